"""Paired comparisons against a reference model over the same users: Δ, bootstrap CI, Wilcoxon.

Every model of a seed and setting scores the same test users, so a model is compared with the
benchmark's ``reference`` user by user (users present in both; their per-user results,
:mod:`recbole_coldmeta.quick_start.user_results`):

- Δ = the model's metric minus the reference's, computed as the table computes the metric
  (:func:`~recbole_coldmeta.evaluator.aggregate`) on the shared users; pooled over seeds, the
  mean of the seeds' Δ (the table's means are means over seeds);
- a 95 % percentile bootstrap interval of Δ: :data:`RESAMPLES` resamples of the users, drawn
  with replacement within each seed (stratified), from the seed's ``bootstrap`` stream;
- a two-sided Wilcoxon signed-rank p-value of the per-user differences (``scipy.stats.wilcoxon``),
  per seed and on the differences of all seeds together;
- the p-values Holm-corrected across the models of a table, per metric and per seed (or
  pooled) (:func:`holm`); a pooled Holm p below :data:`ALPHA` marks the model ▲ (better) or ▼
  (worse) in that metric (:func:`mark`).

NOTE: RMSE is not a mean over users; it is paired on each user's squared error: the Wilcoxon
test ranks the differences of the users' MSE, and Δ and its interval are those of the RMSE of
the pooled rows, ``sqrt`` of the ``n_rows``-weighted mean MSE, model minus reference.

NOTE: zero differences (common for hit@k, or two models that predict alike for a user) are
handled by Pratt's method (``zero_method="pratt"``: ranked with the others, then their ranks
dropped); when every difference is zero, p = 1 (scipy returns NaN there).
"""

import math
import os
from dataclasses import dataclass
from logging import getLogger

import numpy as np
import torch
from scipy import stats

from recbole_coldmeta.evaluator import aggregate
from recbole_coldmeta.quick_start.user_results import read_user_results
from recbole_coldmeta.utils.streams import seeded_generator

#: Bootstrap resamples of each interval.
RESAMPLES = 2000
#: Significance level of the marks (Holm-corrected pooled p-values).
ALPHA = 0.05
#: Metrics (their name before ``@``) where a smaller value is better; all others: larger.
SMALLER_IS_BETTER = ("mae", "mse", "rmse", "logloss", "averagepopularity", "giniindex")


def smaller_is_better(metric):
    """Whether a smaller value of ``metric`` (``mae``, ``ndcg@10``, ...) is better."""
    return metric.split("@")[0] in SMALLER_IS_BETTER


@dataclass
class Paired:
    """One model against the reference on one metric, in one seed or pooled over seeds."""

    delta: float
    low: float
    high: float
    p: float
    users: int
    p_holm: float = math.nan


def paired_values(model_rows, reference_rows, metric):
    """The users of both, and their values of ``metric`` (``mse`` for ``rmse``).

    Args:
        model_rows, reference_rows: per-user rows (``user``, ``n_rows``, metric columns).
        metric: the table's metric.

    Returns:
        tuple: ``(model [n], reference [n], n_rows [n])`` over the users present in both with a
        value in both (in the reference's order), or None when either has no such column.
    """
    column = "mse" if metric == "rmse" else metric
    if not model_rows or not reference_rows:
        return None
    if column not in model_rows[0] or column not in reference_rows[0]:
        return None
    model = {row["user"]: row[column] for row in model_rows}
    pairs = [
        (model[row["user"]], row[column], row["n_rows"])
        for row in reference_rows
        if row["user"] in model and not math.isnan(model[row["user"]] + row[column])
    ]
    x, y, n_rows = np.array(pairs, dtype=np.float64).reshape(-1, 3).T
    return x, y, n_rows


def _delta(metric, x, y, n_rows):
    """Δ of ``[..., n]`` values: the metric of ``x`` minus that of ``y``."""
    column = "mse" if metric == "rmse" else metric
    return aggregate(metric, {column: x}, n_rows) - aggregate(metric, {column: y}, n_rows)


def wilcoxon_p(differences):
    """Two-sided Wilcoxon signed-rank p-value of ``differences`` (Pratt's zeros; 1 if all are
    zero; NaN with no difference)."""
    differences = np.asarray(differences, dtype=np.float64)
    if not len(differences):
        return math.nan
    if not np.any(differences):
        return 1.0
    return float(stats.wilcoxon(differences, zero_method="pratt").pvalue)


def compare(pairs_by_seed, metric, resamples=RESAMPLES):
    """Δ, 95 % bootstrap interval and Wilcoxon p of one model against the reference.

    Args:
        pairs_by_seed: ``{seed: (model [n], reference [n], n_rows [n])}``
            (:func:`paired_values`).
        metric: the metric's name.
        resamples: bootstrap resamples.

    Returns:
        dict: ``{seed: Paired}`` and ``{"pooled": Paired}`` (Holm p not set yet).
    """
    result, draws, differences = {}, [], []
    for seed, (x, y, n_rows) in sorted(pairs_by_seed.items()):
        if not len(x):
            continue
        generator = seeded_generator(seed, "bootstrap")
        index = _resample(len(x), resamples, generator)  # [B, n]
        draw = _delta(metric, x[index], y[index], n_rows[index])  # [B]
        draws.append(draw)
        difference = x - y
        differences.append(difference)
        result[seed] = Paired(
            float(_delta(metric, x, y, n_rows)), *_interval(draw), wilcoxon_p(difference), len(x)
        )
    if result:
        pooled = np.mean(draws, axis=0)  # [B]: each resample's mean over seeds of Δ
        result["pooled"] = Paired(
            float(np.mean([paired.delta for paired in result.values()])),
            *_interval(pooled),
            wilcoxon_p(np.concatenate(differences)),
            sum(paired.users for paired in result.values()),
        )
    return result


def compare_runs(runs, folder, reference, state_of_setting):
    """Every model of a benchmark against ``reference``, per setting and metric.

    Args:
        runs: the benchmark's ``runs.csv`` rows (``user_results``: the run's per-user file,
            relative to ``folder``).
        folder: the benchmark's output folder.
        reference: the reference's label.
        state_of_setting: ``{setting label: its test_state}``, for the rows of a ``train_once``
            run (one file holds every state it was tested on).

    Returns:
        dict: ``{setting: {label: {metric: {seed or "pooled": Paired}}}}``, Holm p not set
        (:func:`correct`, per table); a run without per-user results (finished before they
        were kept) is left out, with a warning.
    """
    users = test_users_of_runs(runs, folder, state_of_setting, "paired columns")
    result = {}
    for run in runs:
        setting, label, seed = key = (run.get("setting", ""), run["label"], int(run["seed"]))
        reference_rows = users.get((setting, reference, seed))
        if label == reference or key not in users or reference_rows is None:
            continue
        by_metric = result.setdefault(setting, {}).setdefault(label, {})
        for metric in (name[5:] for name in run if name.startswith("test/") and run[name]):
            pairs = paired_values(users[key], reference_rows, metric)
            if pairs is not None:
                by_metric.setdefault(metric, {})[seed] = pairs
    for by_label in result.values():
        for by_metric in by_label.values():
            for metric, pairs in by_metric.items():
                by_metric[metric] = compare(pairs, metric)
    return result


def test_users_of_runs(runs, folder, state_of_setting, purpose):
    """Each run's per-user rows of its setting's test users (read from ``folder``).

    Args:
        runs: the benchmark's runs (``setting``, ``label``, ``seed``, ``user_results``).
        folder: the benchmark's output folder.
        state_of_setting: ``{setting label: its test_state}`` (a ``train_once`` run's file
            holds every state it was tested on).
        purpose: what the rows are for, in the warning about a run without them.

    Returns:
        dict: ``{(setting, label, seed): rows}``; a run without per-user results (finished
        before they were kept) is left out, with a warning.
    """
    users, files = {}, {}
    for run in runs:
        key = (run.get("setting", ""), run["label"], int(run["seed"]))
        if not run.get("user_results"):
            getLogger().warning(f"{key}: no per-user results; run it again for {purpose}")
            continue
        path = os.path.join(folder, run["user_results"])
        if path not in files:
            files[path] = read_user_results(path)
        state = (state_of_setting.get(key[0]) or "") if run.get("trained_in") else ""
        users[key] = [r for r in files[path] if r["split"] == "test" and r["state"] == state]
    return users


def _resample(size, resamples, generator):
    return torch.randint(size, (resamples, size), generator=generator).numpy()


def _interval(draws):
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def holm(p_values):
    """Holm's step-down adjustment of a family of p-values (NaN ones are not in the family).

    Returns:
        list of float: the adjusted p-values, in the given order.
    """
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted


def correct(comparisons):
    """Set ``p_holm`` of every :class:`Paired` of one table's metric, in place.

    Args:
        comparisons: ``{label: {seed or "pooled": Paired}}`` for the models of one table and one
            metric; each seed, and the pooled results, is one family.
    """
    keys = {key for result in comparisons.values() for key in result}
    for key in keys:
        family = [result[key] for result in comparisons.values() if key in result]
        for paired, adjusted in zip(family, holm([paired.p for paired in family])):
            paired.p_holm = adjusted


def mark(paired, metric):
    """``" ▲"`` (significantly better than the reference), ``" ▼"`` (worse) or ``""``."""
    if paired is None or not paired.p_holm < ALPHA or paired.delta == 0:
        return ""
    better = (paired.delta < 0) == smaller_is_better(metric)
    return " ▲" if better else " ▼"


def paired_table(comparisons, metrics, reference):
    """Markdown lines: ``Δ vs <reference> [95% CI], p (Holm)`` per model, pooled then per seed.

    Args:
        comparisons: ``{label: {metric: {seed or "pooled": Paired}}}`` of one table's models
            (the reference excluded).
        metrics: the table's metrics, in its column order.
        reference: the reference's label.
    """
    lines = [
        f"Δ vs {reference} [95% CI], p (Holm): model − {reference} on the same test users; "
        f"pooled over seeds, then per seed (users: those paired, summed over seeds when "
        f"pooled); ▲/▼ significantly better/worse (Holm p < {ALPHA}).",
        "",
        "| model | seed | users | " + " | ".join(metrics) + " |",
        "|---" * (len(metrics) + 3) + "|",
    ]
    for label, by_metric in comparisons.items():
        keys = [key for result in by_metric.values() for key in result]
        seeds = ["pooled"] + sorted({key for key in keys if key != "pooled"}, key=str)
        for seed in seeds:
            cells, users = [], ""
            for metric in metrics:
                paired = by_metric.get(metric, {}).get(seed)
                if paired is None:
                    cells.append("—")
                    continue
                users = str(paired.users)
                cells.append(
                    f"{paired.delta:+.4f} [{paired.low:+.4f}, {paired.high:+.4f}], "
                    f"p={_p(paired.p_holm)}{mark(paired, metric)}"
                )
            if any(cell != "—" for cell in cells):
                lines.append(f"| {label} | {seed} | {users} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _p(value):
    return "n/a" if math.isnan(value) else (f"{value:.3f}" if value >= 0.001 else f"{value:.1e}")
