"""Evaluation pieces: metrics registered into RecBole's registry and the collector they need."""

from recbole_coldmeta.evaluator.collector import ColdCollector
from recbole_coldmeta.evaluator.metrics import QueryNDCG, graded_ndcg, register_metric

__all__ = ["ColdCollector", "QueryNDCG", "graded_ndcg", "register_metric"]
