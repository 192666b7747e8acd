"""Evaluation pieces: metrics registered into RecBole's registry, the collector they need, and
each user's metrics."""

from recbole_coldmeta.evaluator.collector import ColdCollector
from recbole_coldmeta.evaluator.metrics import (
    QueryNDCG,
    graded_ndcg,
    graded_ndcg_per_user,
    register_metric,
)
from recbole_coldmeta.evaluator.per_user import ROW_METRICS, aggregate, per_user_metrics

__all__ = [
    "ROW_METRICS",
    "ColdCollector",
    "QueryNDCG",
    "aggregate",
    "graded_ndcg",
    "graded_ndcg_per_user",
    "per_user_metrics",
    "register_metric",
]
