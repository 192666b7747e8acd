"""Each evaluated user's metrics, from the struct RecBole's evaluator scored.

A run's reported metric is recovered from these values: the mean over users for the per-user
metrics (RecBole's top-k metrics, ``query_ndcg@k``, skipping NaN), the mean weighted by
``n_rows`` for the row metrics (``mae``, ``mse``), and ``sqrt`` of the weighted mean of ``mse``
for ``rmse`` (:data:`ROW_METRICS`, :func:`aggregate`).
"""

import inspect

import numpy as np
import torch
from recbole.evaluator import register
from recbole.evaluator.base_metric import TopkMetric
from recbole.utils import EvaluatorType

from recbole_coldmeta.evaluator.metrics import QueryNDCG, graded_ndcg_per_user

#: Per-user columns that are means over the user's rows: the run's value is their
#: ``n_rows``-weighted mean (``rmse``: the square root of that mean of ``mse``).
ROW_METRICS = ("mae", "mse")


def per_user_metrics(config, struct):
    """Every evaluated user's metrics.

    Args:
        config: the run's Config (``metrics``, ``topk``, ``query_ndcg_k``, ``eval_type``).
        struct: the ``DataStruct`` of one evaluation, with ``data.user`` (a
            :class:`~recbole_coldmeta.evaluator.collector.ColdCollector` with ``keep_users``).

    Returns:
        tuple: ``(users [U], n_rows [U], {column: [U] float64})``, users in ascending id order;
        ``n_rows`` is the user's query rows (value evaluation) or positives (ranking). Columns:
        ``mae``, ``mse``, ``rmse`` (with MAE or RMSE among the metrics), ``query_ndcg@k``
        (QueryNDCG; NaN where undefined), ``<metric>@k`` of each RecBole top-k metric; other
        metrics (AUC, LogLoss, GAUC, coverage and popularity metrics) have no per-user column.

    NOTE: a ranking user's value is the mean over their ranking lists: one list a user, except
    in a sequential evaluation with several query rows a user (one list, one positive each);
    there the run's value is the ``n_rows``-weighted mean.
    """
    users = struct.get("data.user").long()
    user_ids, group = torch.unique(users, return_inverse=True)
    size = len(user_ids)
    metrics = [name.lower() for name in config["metrics"]]
    columns = {}
    if config["eval_type"] == EvaluatorType.VALUE:
        n_rows = torch.bincount(group, minlength=size)
        scores = struct.get("rec.score").double().flatten()
        labels = struct.get("data.label").double().flatten()
        if "mae" in metrics or "rmse" in metrics:
            error = scores - labels
            columns["mae"] = _group_mean(error.abs(), group, n_rows)
            columns["mse"] = _group_mean(error**2, group, n_rows)
            columns["rmse"] = columns["mse"].sqrt()
        if QueryNDCG.__name__.lower() in metrics:
            ndcg_users, values = graded_ndcg_per_user(
                users, scores.float(), labels.float(), config["query_ndcg_k"]
            )
            assert torch.equal(ndcg_users, user_ids)
            columns.update({f"query_ndcg@{k}": value for k, value in values.items()})
        return user_ids, n_rows, columns
    pos_index, pos_len = None, None
    lists = torch.bincount(group, minlength=size)
    for name in metrics:
        metric = register.metrics_dict[name](config)
        if not isinstance(metric, TopkMetric):
            continue
        pos_index, pos_len = metric.used_info(struct)  # [R, max k], [R]
        needs_len = len(inspect.signature(metric.metric_info).parameters) == 2
        info = (
            metric.metric_info(pos_index, pos_len) if needs_len else metric.metric_info(pos_index)
        )
        info = torch.as_tensor(info, dtype=torch.float64)  # [R, max k]
        for k in metric.topk:
            columns[f"{name}@{k}"] = _group_mean(info[:, k - 1], group, lists)
    n_rows = lists if pos_len is None else _group_sum(torch.as_tensor(pos_len), group, size)
    return user_ids, n_rows, columns


def _group_sum(values, group, size):
    return torch.zeros(size, dtype=torch.float64).index_add_(0, group, values.double())


def _group_mean(values, group, counts):
    return _group_sum(values, group, len(counts)) / counts.double()


def aggregate(name, values, n_rows):
    """The run's value of metric ``name`` from its users' values (see the module docstring).

    Args:
        name: a reported metric (``mae``, ``rmse``, ``ndcg@10``, ...).
        values: ``{column: [..., U]}`` per-user columns (``rmse`` reads ``mse``); leading
            dimensions are kept (the bootstrap aggregates ``[B, U]`` resamples at once).
        n_rows: ``[..., U]`` rows of each user.

    Returns:
        numpy.ndarray: ``[...]``; NaN where no user has a value.
    """
    weights = np.asarray(n_rows, dtype=np.float64)
    if name in ("rmse", *ROW_METRICS):
        column = np.asarray(values["mse" if name == "rmse" else name], dtype=np.float64)
        mean = (column * weights).sum(axis=-1) / weights.sum(axis=-1)
        return np.sqrt(mean) if name == "rmse" else mean
    column = np.asarray(values[name], dtype=np.float64)
    valid = ~np.isnan(column)
    count = valid.sum(axis=-1)
    total = np.where(valid, column, 0.0).sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)
