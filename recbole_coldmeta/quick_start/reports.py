"""A benchmark's K-shot curves (``shots:``) and per-group breakdown (``breakdown:``).

K-shot (every run has ``shots`` set: :mod:`recbole_coldmeta.quick_start.kshot`): ``kshot.md``,
per setting and metric, the metric at each K as mean ± std over seeds per model, the number of
users scored (the same at every K; summed over seeds) and whether the model was refitted per K;
``kshot.png``, the metric against K, one line per model, the band ± one std over seeds.

Breakdown (from the runs' per-user results in ``users/``)::

    breakdown:
      support_size: [0, 10, 20, 50]   # bins by support rows: [0, 10), [10, 20), [20, 50), >= 50
      query_popularity: 3             # bins by mean train rows of the query items: terciles

``breakdown.md``: per setting, dimension and metric, the metric of each group's users as mean ±
std over seeds per model, and the users of each group (summed over seeds); ``breakdown.png``:
grouped bars, one panel per dimension and metric.

NOTE: popularity bins are quantiles of the users' ``query_popularity`` per setting and seed
(every model of a seed scores the same users, so a user is in the same group for every model);
``1/3`` holds the users with the least popular query items. A support-size bin below the first
edge collects the users with fewer rows, so the groups always add up to the users.
"""

import math
import os
import statistics
from logging import getLogger

import numpy as np
from recbole.utils import ModelType

from recbole_coldmeta.config.checks import file_declarations
from recbole_coldmeta.evaluator import aggregate
from recbole_coldmeta.quick_start.significance import test_users_of_runs
from recbole_coldmeta.registry import get_model
from recbole_coldmeta.utils import ConfigError, properties_dir
from recbole_coldmeta.utils.atomic import atomic_path, atomic_write_text

#: The breakdown's dimensions: the per-user column each one bins.
DIMENSIONS = {"support_size": "n_support", "query_popularity": "query_popularity"}


def check_shots(path, shots, models):
    """``shots:`` of a benchmark file, by ``shots``'s declaration (``properties/overall.yaml``),
    and its models (the sequential ones cannot be cut: :mod:`~recbole_coldmeta.quick_start.kshot`).

    Raises:
        ConfigError: ``shots`` is not a non-empty list of integers >= 0, or a model of
            ``models`` (the file's model entries) is sequential.
    """
    declaration = file_declarations(str(properties_dir() / "overall.yaml"))["shots"]
    problem = None if shots is None else declaration.problem(shots)
    if shots is None or problem:
        raise ConfigError(f"Benchmark '{path}': shots={shots!r} {problem or 'must be a list'}.")
    for entry in models:
        if getattr(get_model(entry["model"]), "type", None) == ModelType.SEQUENTIAL:
            raise ConfigError(
                f"Benchmark '{path}': shots cuts support rows, but {entry['model']} is "
                f"sequential (its query rows carry the whole history). Remove it or shots."
            )


def check_breakdown(path, breakdown):
    """``breakdown:`` of a benchmark file (see the module docstring).

    Raises:
        ConfigError: unknown dimensions, support sizes that are not ascending integers >= 0,
            or a number of popularity bins that is not an integer >= 2.
    """
    if not isinstance(breakdown, dict) or not breakdown or set(breakdown) - set(DIMENSIONS):
        raise ConfigError(
            f"Benchmark '{path}': breakdown={breakdown!r} must map some of {list(DIMENSIONS)} "
            f"to their bins, e.g. {{support_size: [0, 10, 20], query_popularity: 3}}."
        )
    edges = breakdown.get("support_size", [0])
    if (
        not isinstance(edges, list)
        or not edges
        or not all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in edges)
        or edges != sorted(set(edges))
    ):
        raise ConfigError(
            f"Benchmark '{path}': breakdown support_size={edges!r} must be ascending distinct "
            f"integers >= 0 (the bins' lower edges), e.g. [0, 10, 20, 50]."
        )
    bins = breakdown.get("query_popularity", 2)
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 2:
        raise ConfigError(
            f"Benchmark '{path}': breakdown query_popularity={bins!r} must be an integer >= 2 "
            f"(the number of quantile bins, 3: terciles)."
        )


def shot_columns(result):
    """A run's K-shot result as ``runs.csv`` columns: ``shots/<K>/<metric>``, ``shot_users``,
    ``shot_refit``, ``shot_seconds`` (none without ``shot_results``)."""
    if "shot_results" not in result:
        return {}
    columns = {
        f"shots/{shots}/{name}": value
        for shots, metrics in result["shot_results"].items()
        for name, value in metrics.items()
    }
    columns.update({key: result[key] for key in ("shot_users", "shot_refit", "shot_seconds")})
    return columns


def _shot_series(runs, label):
    """``{metric: {K: [value per seed]}}`` of ``label``'s runs."""
    series = {}
    for run in runs:
        if run["label"] != label:
            continue
        for key, value in run.items():
            if key.startswith("shots/") and value not in ("", None):
                _, shots, metric = key.split("/", 2)
                series.setdefault(metric, {}).setdefault(int(shots), []).append(float(value))
    return series


def _mean_std(values):
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def shot_table(runs, labels, settings=("",)):
    """Markdown: per setting and metric, one row per model, one column per K."""
    lines = []
    for setting in settings:
        part = [run for run in runs if run.get("setting", "") == setting]
        series = {label: _shot_series(part, label) for label in labels}
        metrics = list(dict.fromkeys(m for by_metric in series.values() for m in by_metric))
        for metric in metrics:
            shots = sorted({k for s in series.values() for k in s.get(metric, {})})
            lines += [f"#### {setting + ': ' if setting else ''}{metric} by shots (K)", ""]
            lines.append("| model | " + " | ".join(f"K={k}" for k in shots) + " | users | fit |")
            lines.append("|---" * (len(shots) + 3) + "|")
            for label in labels:
                by_shot = series[label].get(metric)
                if not by_shot:
                    continue
                cells = [_cell(by_shot.get(k, [])) for k in shots]
                rows = [run for run in part if run["label"] == label]
                users = sum(int(run["shot_users"]) for run in rows if run.get("shot_users"))
                refit = any(str(run.get("shot_refit")) == "True" for run in rows)
                fit = "refitted per K" if refit else "one model"
                lines.append(f"| {label} | " + " | ".join(cells) + f" | {users} | {fit} |")
            lines += ["", _SHOT_NOTE, ""]
    return "\n".join(lines)


_SHOT_NOTE = (
    "Mean ± std over seeds; users: the test users with at least max K support rows, the same at "
    "every K (summed over seeds). Each user's first K support rows (by time where the data has "
    "it). 'one model': the selected checkpoint adapts on the K rows; 'refitted per K': trained "
    "again on the train split holding only the first K support rows of each cold user."
)


def _cell(values):
    mean, std = _mean_std(values)
    return "—" if math.isnan(mean) else f"{mean:.4f} ± {std:.4f}"


def shot_plot(runs, labels, path, settings=("",)):
    """The metric against K, one line per model, a band of ± one std over seeds; one row of
    panels per setting, one panel per metric."""
    plt = _pyplot()
    panels = []
    for setting in settings:
        part = [run for run in runs if run.get("setting", "") == setting]
        series = {label: _shot_series(part, label) for label in labels}
        metrics = list(dict.fromkeys(m for by_metric in series.values() for m in by_metric))
        panels.append((setting, series, metrics))
    width = max((len(metrics) for *_, metrics in panels), default=1) or 1
    figure, axes = plt.subplots(
        len(panels), width, figsize=(5 * width, 3.6 * len(panels)), squeeze=False
    )
    for row, (setting, series, metrics) in enumerate(panels):
        for axis, metric in zip(axes[row], metrics):
            for label in labels:
                by_shot = series[label].get(metric)
                if not by_shot:
                    continue
                shots = sorted(by_shot)
                mean, std = np.array([_mean_std(by_shot[k]) for k in shots]).T
                axis.plot(shots, mean, marker="o", label=label)
                axis.fill_between(shots, mean - std, mean + std, alpha=0.2)
                axis.set_xticks(shots)
            axis.set_xlabel("shots K (support rows)")
            axis.set_title(f"{setting + ': ' if setting else ''}{metric}")
            axis.legend(fontsize=7)
    _save(plt, figure, path)


def breakdown(runs, folder, labels, settings, state_of_setting, spec):
    """``(markdown, groups)``: the breakdown's tables, and ``{(setting, dimension, metric):
    {label: {group: [(seed, value, users)]}}}`` that :func:`breakdown_plot` draws."""
    users = test_users_of_runs(runs, folder, state_of_setting, "the breakdown")
    groups = {}
    for (setting, label, seed), rows in users.items():
        if rows and "n_support" not in rows[0]:
            getLogger().warning(
                f"{(setting, label, seed)}: its per-user file predates n_support and "
                f"query_popularity; run it again to have it in the breakdown"
            )
            continue
        for dimension, column in DIMENSIONS.items():
            if dimension not in spec:
                continue
            of_seed = [
                r for (s, _, d), rs in users.items() if (s, d) == (setting, seed)
                for r in rs if column in r
            ]  # fmt: skip
            assign = _grouping(dimension, spec[dimension], of_seed, column)
            by_group = {}
            for row in rows:
                by_group.setdefault(assign(row[column]), []).append(row)
            metrics = [key for key in rows[0] if key not in _KEYS and key != "mse"]
            for metric in metrics:
                cell = groups.setdefault((setting, dimension, metric), {}).setdefault(label, {})
                for group, members in by_group.items():
                    value = _group_metric(metric, members)
                    cell.setdefault(group, []).append((seed, value, len(members)))
    return _breakdown_markdown(groups, labels, settings), groups


#: Per-user columns that are not metrics.
_KEYS = ("split", "state", "user", "n_rows", "n_support", "query_popularity")


def _grouping(dimension, bins, rows, column):
    """``value -> (order, group name)`` for one dimension, over one seed's users ``rows``."""
    if dimension == "support_size":
        edges = list(bins)

        def support_group(value):
            position = int(np.searchsorted(edges, value, side="right")) - 1
            if position < 0:
                return (-1, f"support < {edges[0]}")
            if position == len(edges) - 1:
                return (position, f"support ≥ {edges[-1]}")
            return (position, f"support {edges[position]}–{edges[position + 1] - 1}")

        return support_group
    values = np.array(sorted({(r["user"], r[column]) for r in rows}), dtype=object)[:, 1]
    cuts = np.quantile(values.astype(np.float64), np.arange(1, bins) / bins)

    def popularity_group(value):
        position = int(np.searchsorted(cuts, value, side="right"))
        return (position, f"popularity {position + 1}/{bins}")

    return popularity_group


def _group_metric(metric, rows):
    column = "mse" if metric == "rmse" else metric
    values = {column: np.array([row[column] for row in rows], dtype=np.float64)}
    return float(aggregate(metric, values, np.array([row["n_rows"] for row in rows])))


def _breakdown_markdown(groups, labels, settings):
    lines = []
    for setting, dimension, metric in _ordered(groups, settings):
        by_label = groups[(setting, dimension, metric)]
        present = [label for label in labels if label in by_label]
        names = sorted({group for cells in by_label.values() for group in cells})
        title = f"{setting + ': ' if setting else ''}{metric} by {dimension}"
        lines += [f"#### {title}", "", "| group | users | " + " | ".join(present) + " |"]
        lines.append("|---" * (len(present) + 2) + "|")
        for group in names:
            counts = {sum(c for _, _, c in by_label[label].get(group, [])) for label in present}
            cells = [_cell([v for _, v, _ in by_label[label].get(group, [])]) for label in present]
            users = "/".join(str(c) for c in sorted(counts))
            lines.append(f"| {group[1]} | {users} | " + " | ".join(cells) + " |")
        lines += ["", _BREAKDOWN_NOTE, ""]
    return "\n".join(lines)


_BREAKDOWN_NOTE = (
    "Mean ± std over seeds of the metric over each group's test users; users: summed over "
    "seeds (a/b where the models' counts differ: a run left out). Support size: the user's "
    "support rows; popularity: quantile bins (per seed) of the mean train rows of the user's "
    "query items, 1 = least popular."
)


def breakdown_plot(groups, labels, path, settings):
    """Grouped bars (one group of bars per user group, one bar per model, ± std over seeds):
    one row of panels per setting and dimension, one panel per metric."""
    plt = _pyplot()
    keys = _ordered(groups, settings)
    rows = list(dict.fromkeys(key[:2] for key in keys))
    width = max((sum(key[:2] == row for key in keys) for row in rows), default=1)
    figure, axes = plt.subplots(
        max(len(rows), 1), width, figsize=(5 * width, 3.6 * max(len(rows), 1)), squeeze=False
    )
    for axis in axes.flat:
        axis.set_visible(False)
    for row, panel in enumerate(rows):
        for axis, key in zip(axes[row], [key for key in keys if key[:2] == panel]):
            axis.set_visible(True)
            _bars(axis, groups[key], labels)
            setting, dimension, metric = key
            axis.set_title(f"{setting + ': ' if setting else ''}{metric} by {dimension}")
    _save(plt, figure, path)


def _ordered(groups, settings):
    """``groups``'s keys, setting by setting (dimensions and metrics in first-seen order)."""
    return sorted(groups, key=lambda key: settings.index(key[0]))


def _bars(axis, by_label, labels):
    present = [label for label in labels if label in by_label]
    names = sorted({group for cells in by_label.values() for group in cells})
    width = 0.8 / max(len(present), 1)
    for offset, label in enumerate(present):
        stats = [_mean_std([v for _, v, _ in by_label[label].get(g, [])]) for g in names]
        axis.bar(
            [i + offset * width for i in range(len(names))],
            [s[0] for s in stats],
            width,
            yerr=[s[1] for s in stats],
            capsize=3,
            label=label,
        )
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(names))])
    axis.set_xticklabels([name for _, name in names], rotation=30, fontsize=7)
    axis.legend(fontsize=7)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, figure, path):
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)


def write_reports(spec, runs, folder, labels, settings):
    """Write ``kshot.md``/``kshot.png`` (with ``shots``) and ``breakdown.md``/``breakdown.png``
    (with ``breakdown``) into ``folder``."""
    if spec.get("shots"):
        atomic_write_text(os.path.join(folder, "kshot.md"), shot_table(runs, labels, settings))
        shot_plot(runs, labels, os.path.join(folder, "kshot.png"), settings)
    if spec.get("breakdown"):
        states = {s["label"]: s["config"].get("test_state") for s in spec["settings"]}
        text, groups = breakdown(runs, folder, labels, settings, states, spec["breakdown"])
        atomic_write_text(os.path.join(folder, "breakdown.md"), text)
        breakdown_plot(groups, labels, os.path.join(folder, "breakdown.png"), settings)
