"""QueryNDCG: hand-computed values and registration in RecBole's registry."""

import math

import pytest
import torch
from recbole.evaluator import register

from recbole_coldmeta.config import Config
from recbole_coldmeta.evaluator import QueryNDCG, graded_ndcg
from recbole_coldmeta.utils import DataError


def test_graded_ndcg_by_hand():
    users = torch.tensor([0, 0, 0, 1, 1])
    scores = torch.tensor([0.9, 0.5, 0.1, 0.2, 0.8])
    labels = torch.tensor([3.0, 5.0, 1.0, 4.0, 2.0])
    result = graded_ndcg(users, scores, labels, [1, 2])
    user0_at2 = (3 + 5 / math.log2(3)) / (5 + 3 / math.log2(3))
    user1_at2 = (2 + 4 / math.log2(3)) / (4 + 2 / math.log2(3))
    assert math.isclose(result[1], (3 / 5 + 2 / 4) / 2, rel_tol=1e-9)
    assert math.isclose(result[2], (user0_at2 + user1_at2) / 2, rel_tol=1e-9)


def test_perfect_ranking_scores_one_and_order_of_rows_does_not_matter():
    users = torch.tensor([1, 0, 1, 0, 1])
    labels = torch.tensor([2.0, 1.0, 5.0, 4.0, 3.0])
    assert graded_ndcg(users, labels.clone(), labels, [1, 3, 5]) == {1: 1.0, 3: 1.0, 5: 1.0}
    perm = torch.tensor([4, 2, 0, 3, 1])
    scores = torch.tensor([0.3, 0.1, 0.2, 0.9, 0.5])
    assert graded_ndcg(users, scores, labels, [3]) == graded_ndcg(
        users[perm], scores[perm], labels[perm], [3]
    )


def test_registered_in_recbole_and_accepted_by_config():
    assert register.metrics_dict["queryndcg"] is QueryNDCG
    config = Config(
        "MeLU", config_dict={"metrics": ["MAE", "QueryNDCG"], "valid_metric": "query_ndcg@3"}
    )
    assert config["valid_metric_bigger"] is True


def test_negative_labels_are_refused_not_scored():
    class Data:
        def __init__(self, values):
            self.values = values

        def get(self, key):
            return self.values[key]

    metric = QueryNDCG(Config("MeLU", config_dict={"metrics": ["MAE", "QueryNDCG"]}))
    data = {
        "rec.score": torch.tensor([0.9, 0.1, 0.5]),
        "data.user": torch.tensor([1, 1, 2]),
        "data.label": torch.tensor([4.0, 1.0, 3.0]),
    }
    assert set(metric.calculate_metric(Data(data))) == {f"query_ndcg@{k}" for k in (1, 3, 5)}
    data["data.label"] = torch.tensor([4.0, -1.0, 3.0])
    with pytest.raises(DataError, match="negative label"):
        metric.calculate_metric(Data(data))
