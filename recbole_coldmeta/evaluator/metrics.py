"""Metrics RecBole 1.2 lacks, registered through its metric registry.

Reference: the graded query-set nDCG@k of the MeLU lineage (Lee et al. "MeLU: Meta-Learned User
Preference Estimator for Cold-Start Recommendation." in KDD 2019).
"""

import torch
from recbole.evaluator import metrics as recbole_metrics
from recbole.evaluator import register
from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType

from recbole_coldmeta.meta import pad_groups
from recbole_coldmeta.utils import DataError


def graded_ndcg_per_user(users, scores, labels, ks):
    """nDCG@k of each user's query items ranked by ``scores``, gain = label.

    Args:
        users: ``[N]`` user id of each row.
        scores: ``[N]`` predicted scores.
        labels: ``[N]`` true graded relevance (ratings).
        ks: cut-offs.

    Returns:
        tuple: ``(user_ids [U], {k: [U] float64 nDCG@k})``, users in ascending id order; NaN
        for a user whose ideal DCG is 0 (no positive gain: nDCG is undefined).

    NOTE: gain is the rating itself (linear), discount ``1 / log2(rank + 1)``, ties in the
    predicted scores keep the rows' order. Users with fewer than k query items use all of them.
    """
    user_ids, group = torch.unique(users, return_inverse=True)
    index, mask = pad_groups(group, len(user_ids))  # [U, Q]
    score = torch.where(mask, scores[index], torch.tensor(float("-inf"), dtype=scores.dtype))
    gain = torch.where(mask, labels[index].to(torch.float64), torch.zeros((), dtype=torch.float64))
    ranked_gain = gain.gather(1, torch.argsort(score, dim=1, descending=True, stable=True))
    ideal_gain = torch.sort(gain, dim=1, descending=True).values
    discount = 1.0 / torch.log2(torch.arange(2, gain.shape[1] + 2, dtype=torch.float64))
    values = {}
    for k in ks:
        dcg = (ranked_gain[:, :k] * discount[:k]).sum(dim=1)
        idcg = (ideal_gain[:, :k] * discount[:k]).sum(dim=1)
        values[k] = torch.where(idcg > 0, dcg / idcg, torch.tensor(float("nan"), dtype=dcg.dtype))
    return user_ids, values


def graded_ndcg(users, scores, labels, ks):
    """Mean over users of nDCG@k of their query items (:func:`graded_ndcg_per_user`).

    Returns:
        dict: ``{k: mean nDCG@k}`` over users whose ideal DCG is positive (0.0 if none is).
    """
    _, values = graded_ndcg_per_user(users, scores, labels, ks)
    result = {}
    for k, per_user in values.items():
        valid = ~torch.isnan(per_user)
        result[k] = float(per_user[valid].mean()) if valid.any() else 0.0
    return result


class QueryNDCG(AbstractMetric):
    """nDCG@k of each cold user's query items ranked by predicted rating (graded relevance).

    The cut-offs are ``query_ndcg_k`` (default ``[1, 3, 5]``); results are named
    ``query_ndcg@k``. It is a value-type metric, so it runs beside MAE and RMSE in RecBole's
    ``labeled`` evaluation mode.

    NOTE: the gain of an item is its label, unshifted (on 1-5 ratings, the MeLU lineage's
    numbers); a negative label would make nDCG negative or above 1, so negative labels are
    refused, not shifted: the data checks stop a run whose label column holds one before it
    trains (:mod:`recbole_coldmeta.data.row_checks`), and this metric raises ``DataError`` if
    one still reaches it.
    """

    metric_type = EvaluatorType.VALUE
    metric_need = ["rec.score", "data.label", "data.user"]
    smaller = False

    def __init__(self, config):
        super().__init__(config)
        self.ks = config["query_ndcg_k"]

    def calculate_metric(self, dataobject):
        scores = dataobject.get("rec.score").float().cpu()
        labels = dataobject.get("data.label").float().cpu()
        users = dataobject.get("data.user").cpu()
        if len(labels) and labels.min() < 0:
            raise DataError(
                f"QueryNDCG uses labels as gains and got a negative label ({labels.min():g}). "
                f"Fix: shift the label scale to start at 0 or above, or leave QueryNDCG out of "
                f"metrics."
            )
        values = graded_ndcg(users, scores, labels, self.ks)
        return {f"query_ndcg@{k}": round(value, self.decimal_place) for k, value in values.items()}


def register_metric(metric_class):
    """Add ``metric_class`` to RecBole's metric registry (``recbole.evaluator.register``).

    NOTE: RecBole builds its registry once, from the classes defined in
    ``recbole.evaluator.metrics``; ``Config`` and ``Evaluator`` read these very dicts, so adding
    the entries is how a metric joins RecBole's evaluator without editing RecBole. Only new names
    are added; RecBole's own metrics are never replaced.
    """
    name = metric_class.__name__.lower()
    if name in register.metrics_dict and register.metrics_dict[name] is not metric_class:
        raise ValueError(f"RecBole already has a metric named {name!r}")
    assert not hasattr(recbole_metrics, metric_class.__name__)
    register.metrics_dict[name] = metric_class
    register.metric_information[name] = metric_class.metric_need
    register.metric_types[name] = metric_class.metric_type
    if metric_class.smaller and name not in register.smaller_metrics:
        register.smaller_metrics.append(name)


register_metric(QueryNDCG)
