"""Benchmarks: models x seeds on one shared split per seed, written as CSV, Markdown and PNG.

A benchmark file (``properties/benchmark/*.yaml``)::

    name: ml-100k-user-cold            # output folder name
    dataset: ml-100k
    seeds: [2020, 2021, 2022]
    config: {show_progress: False}     # applied to every run
    reference: UserItemBias            # optional: every other model is compared with it
    models:
      - model: UserItemBias
      - model: MeLU                    # a recbole_coldmeta or RecBole model
      - model: MeLU                    # the same model again, as an ablation
        label: MeLU (first order)      # the name in the tables (default: the model name)
        config: {first_order: True}
    settings:                          # optional: every model x seed runs once per setting
      - {label: "beta=20%", config: {cold_user_ratio: 0.2}}
      - {label: "beta=50%", config: {cold_user_ratio: 0.5}}

When every setting sets only ``test_state`` (MeLU's state files), a model entry with
``train_once: True`` (a meta-learner) trains once per seed, in the first setting, and its selected
model is evaluated on every setting's state (``also_test_states``): MeLU's protocol, and one
training instead of one per state.

Every run is ``run_coldmeta`` with the benchmark's config, the setting's config, the model's
config and the seed; the seed also fixes the split, so all models of a seed and setting see the
same users and interactions (the ``split`` counts are stored per run and checked). Selection is on
validation data only: each run keeps its best-validation checkpoint and reports that checkpoint's
test metrics.

Every run is asked for its per-user results (``user_results``), kept in ``users/`` (one
gzipped CSV per run, named in the run's ``user_results`` column), and its split manifest in
``splits/`` (one file per distinct split, named in its ``split_manifest`` column, with its
``split_sha256``). With ``reference`` (a model
label of the file), each other model's row of a table is compared with the reference's on the
same test users of the same seed and setting (:mod:`recbole_coldmeta.quick_start.significance`):
its cells are marked ▲ / ▼ where it is significantly better / worse, and a paired table under
the table gives Δ, its 95 % bootstrap interval and the Holm-corrected Wilcoxon p, pooled over
seeds and per seed.

Outputs, in ``<output_dir>/<name>/``: ``runs.csv`` (one row per run; finished runs are skipped
when the benchmark is run again), ``users/`` (per-user results), ``table.md`` (mean ± std over
seeds per model and metric, the best per column in bold, one table per setting and metric set,
each with its paired table when there is a reference) and ``plot.png`` (grouped bars, error
bars, one row of panels per setting). With ``shots: [0, 1, 3, 5, 10, 20]`` (set on every run)
also ``kshot.md`` and ``kshot.png``; with ``breakdown: {support_size: [0, 10, 20, 50],
query_popularity: 3}`` also ``breakdown.md`` and ``breakdown.png``
(:mod:`recbole_coldmeta.quick_start.reports`).
"""

import csv
import hashlib
import io
import json
import math
import os
import statistics
from logging import getLogger

import yaml

from recbole_coldmeta.quick_start import reports, significance
from recbole_coldmeta.quick_start.user_results import write_user_results
from recbole_coldmeta.registry import get_model
from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.atomic import atomic_path, atomic_write_text, check_writable_dir
from recbole_coldmeta.utils.config_keys import known_config_keys

RUN_KEYS = ("setting", "label", "model", "seed")


def load_benchmark(path):
    """Read and check a benchmark file before anything runs.

    Raises:
        ConfigError: the file is missing or not valid, or names an unknown model.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"Benchmark file '{path}' does not exist.")
    with open(path, encoding="utf-8") as f:
        spec = yaml.safe_load(f) or {}
    unknown = set(spec) - {
        "name", "dataset", "seeds", "config", "models", "config_files", "settings", "reference",
        "shots", "breakdown",
    }  # fmt: skip
    if unknown:
        raise ConfigError(f"Benchmark file '{path}' has unknown keys {sorted(unknown)}.")
    for key in ("name", "dataset", "seeds", "models"):
        if not spec.get(key):
            raise ConfigError(f"Benchmark file '{path}' needs a non-empty '{key}'.")
    labels = []
    for entry in spec["models"]:
        if not isinstance(entry, dict) or "model" not in entry:
            raise ConfigError(f"Each entry of 'models' in '{path}' needs a 'model': got {entry}.")
        unknown = set(entry) - {"model", "label", "config", "train_once"}
        if unknown:
            raise ConfigError(
                f"Model entry {entry} in '{path}' has unknown keys {sorted(unknown)}."
            )
        get_model(entry["model"])  # an unknown model fails here, before any training
        entry.setdefault("label", entry["model"])
        entry.setdefault("config", {})
        entry.setdefault("train_once", False)
        labels.append(entry["label"])
    duplicated = {label for label in labels if labels.count(label) > 1}
    if duplicated:
        raise ConfigError(f"Benchmark '{path}' uses the labels {sorted(duplicated)} twice.")
    spec.setdefault("config", {})
    spec.setdefault("config_files", [])
    if "settings" not in spec:
        spec["settings"] = [{"label": "", "config": {}}]
    for setting in spec["settings"] or [None]:
        if not isinstance(setting, dict) or "label" not in setting:
            raise ConfigError(
                f"Each entry of 'settings' in '{path}' needs a 'label' and a 'config': got "
                f"{setting}."
            )
        setting.setdefault("config", {})
    _check_train_once(path, spec)
    _check_config_keys(path, spec)
    _check_reference(path, spec, labels)
    if "shots" in spec:
        reports.check_shots(path, spec["shots"], spec["models"])
    if "breakdown" in spec:
        reports.check_breakdown(path, spec["breakdown"])
    return spec


def _check_reference(path, spec, labels):
    reference = spec.get("reference")
    if reference is None:
        return
    if reference not in labels:
        raise ConfigError(
            f"Benchmark '{path}': reference {reference!r} is not a model label of the file; set "
            f"it to one of {labels}."
        )
    configs = [spec["config"], *(s["config"] for s in spec["settings"])]
    configs += [entry["config"] for entry in spec["models"]]
    if any(config.get("user_results") is False for config in configs):
        raise ConfigError(
            f"Benchmark '{path}': reference {reference!r} compares per-user results, which "
            f"user_results: False switches off; remove user_results: False (or the reference)."
        )


def _check_train_once(path, spec):
    once = [entry for entry in spec["models"] if entry["train_once"]]
    if not once:
        return
    if any(set(setting["config"]) != {"test_state"} for setting in spec["settings"]):
        raise ConfigError(
            f"Benchmark '{path}': train_once needs settings that set test_state and nothing "
            f"else (one trained model is evaluated on each state). Remove train_once."
        )
    for entry in once:
        if not getattr(get_model(entry["model"]), "task_batches", False):
            raise ConfigError(
                f"Benchmark '{path}': train_once is for meta-learners (trained on meta-train "
                f"tasks only); {entry['model']} is fitted on the train split of its test state."
            )


def _check_config_keys(path, spec):
    """A misspelled key in any config of the file fails here, before hours of runs."""
    known = known_config_keys()
    configs = [spec["config"], *(s["config"] for s in spec["settings"])]
    configs += [entry["config"] for entry in spec["models"]]
    unknown = sorted({key for config in configs for key in config} - known)
    if unknown and not spec["config"].get("allow_unknown_config_keys"):
        raise ConfigError(
            f"Benchmark '{path}' sets unknown config keys {unknown}. Fix the spelling."
        )


def _read_runs(path):
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _write_runs(path, runs):
    columns = list(RUN_KEYS)
    for run in runs:
        columns += [key for key in run if key not in columns]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(runs)
    atomic_write_text(path, text.getvalue())


def _settings_of_run(spec, setting, entry):
    """The settings one run of ``entry`` in ``setting`` reports: itself, or with ``train_once``
    all of them from the first setting (none from the others)."""
    if not entry["train_once"]:
        return [setting]
    return list(spec["settings"]) if setting is spec["settings"][0] else []


def _flatten(spec, setting, entry, seed, result):
    row = {"setting": setting["label"], "label": entry["label"], "model": entry["model"]}
    row.update(seed=seed, dataset=spec["dataset"])
    test_result, split = result["test_result"], result.get("split")
    if "state_results" in result:
        state = setting["config"]["test_state"]
        test_result, split = result["state_results"][state], result["state_splits"][state]
        row["trained_in"] = spec["settings"][0]["label"]
    for name, value in test_result.items():
        row[f"test/{name}"] = value
    for name, value in result["valid_result"].items():
        row[f"valid/{name}"] = value
    row["train_seconds"] = result["train_seconds"]
    row["test_seconds"] = result.get("test_seconds")
    row["split"] = json.dumps(split, sort_keys=True)
    return row


def run_benchmark(path, output_dir="results", runner=None):
    """Run every (model, seed) of the benchmark at ``path`` that is not finished yet.

    Args:
        path: the benchmark YAML.
        output_dir: parent folder of the benchmark's output folder.
        runner: ``run_coldmeta``-compatible callable (tests inject a fake one).

    Returns:
        str: the output folder.

    Raises:
        ConfigError: before any run, for a bad benchmark file or an output folder that cannot
            be created or written.
    """
    if runner is None:
        from recbole_coldmeta.quick_start.quick_start import run_coldmeta as runner
    spec = load_benchmark(path)
    folder = os.path.join(output_dir, spec["name"])
    check_writable_dir(folder, "--output_dir", shown=output_dir)
    runs_file = os.path.join(folder, "runs.csv")
    runs = _read_runs(runs_file)
    done = {(run.get("setting", ""), run["label"], int(run["seed"])) for run in runs}
    logger = getLogger()
    for setting in spec["settings"]:
        for seed in spec["seeds"]:
            for entry in spec["models"]:
                settings = _settings_of_run(spec, setting, entry)
                if not settings or all(
                    (s["label"], entry["label"], int(seed)) in done for s in settings
                ):
                    continue
                logger.warning(
                    f"benchmark {spec['name']}: {setting['label']} {entry['label']}, seed {seed}"
                )
                config = {"user_results": True, **spec["config"], **setting["config"]}
                config = {**config, **entry["config"], "seed": seed}
                if spec.get("shots") and "shots" not in entry["config"]:
                    config["shots"] = spec["shots"]  # a model's own shots (e.g. ~) win
                if len(settings) > 1:
                    config["also_test_states"] = [s["config"]["test_state"] for s in settings[1:]]
                result = runner(
                    entry["model"],
                    spec["dataset"],
                    config_file_list=spec["config_files"] or None,
                    config_dict=config,
                )
                users = _keep_user_results(folder, setting, entry, seed, result)
                split = _keep_split(folder, result)
                for other in settings:
                    runs.append(_flatten(spec, other, entry, seed, result))
                    runs[-1].update(users)
                    runs[-1].update(split if other is setting else {})
                    if other is setting:  # shots are scored on the run's own test_state
                        runs[-1].update(reports.shot_columns(result))
                    done.add((other["label"], entry["label"], int(seed)))
                _write_runs(runs_file, runs)
    _check_shared_splits(runs)
    labels = [entry["label"] for entry in spec["models"]]
    settings = [setting["label"] for setting in spec["settings"]]
    comparisons = None
    if spec.get("reference"):
        states = {s["label"]: s["config"].get("test_state") for s in spec["settings"]}
        comparisons = significance.compare_runs(runs, folder, spec["reference"], states)
    table = summarize(runs, labels, settings, comparisons, spec.get("reference"))
    atomic_write_text(os.path.join(folder, "table.md"), table)
    plot(runs, labels, os.path.join(folder, "plot.png"), settings)
    reports.write_reports(spec, runs, folder, labels, settings)
    return folder


def _keep_user_results(folder, setting, entry, seed, result):
    """Write the run's per-user rows to ``users/`` in ``folder``: ``{"user_results": path}``
    (relative to ``folder``), or ``{}`` for a run without them."""
    rows = result.pop("user_results", None)
    if rows is None:
        return {}
    key = json.dumps([setting["label"], entry["label"], int(seed)])
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{entry['label']}-{seed}")
    name = f"users/{slug}-{hashlib.sha1(key.encode()).hexdigest()[:8]}.csv.gz"
    os.makedirs(os.path.join(folder, "users"), exist_ok=True)
    write_user_results(os.path.join(folder, name), rows)
    return {"user_results": name}


def _keep_split(folder, result):
    """Write the run's split manifest to ``splits/<sha256>.split.csv.gz`` in ``folder`` unless a
    run of the same split wrote it: ``{"split_sha256": ..., "split_manifest": path}`` (relative to
    ``folder``), or ``{}`` for a run without one.

    NOTE: one file per distinct split, named by its hash: the models of a seed and setting share
    it; a model whose split differs (another ``support_mode``, a sequence's repeats) gets its own.
    A ``train_once`` run's manifest is its training setting's split: only that row names it.
    """
    manifest = result.pop("split_manifest", None)
    if manifest is None:
        return {}
    name = f"splits/{manifest.sha256}.split.csv.gz"
    if not os.path.isfile(os.path.join(folder, name)):
        os.makedirs(os.path.join(folder, "splits"), exist_ok=True)
        manifest.write(os.path.join(folder, name))
    return {"split_sha256": manifest.sha256, "split_manifest": name}


def _check_shared_splits(runs):
    by_seed = {}
    for run in runs:
        if run.get("split") and run["split"] != "null":
            key = (run.get("setting", ""), int(run["seed"]))
            by_seed.setdefault(key, set()).add(run["split"])
    for (setting, seed), splits in by_seed.items():
        if len(splits) > 1:
            getLogger().warning(
                f"{setting} seed {seed}: runs used different splits {sorted(splits)} (sequential "
                f"models count augmented rows, so their counts differ legitimately)"
            )


def _in_setting(runs, setting):
    return [run for run in runs if run.get("setting", "") == setting]


def _metric_sets(runs, labels):
    """Group labels by the test metrics their runs report, in first-seen order."""
    groups = {}
    for label in labels:
        rows = [run for run in runs if run["label"] == label]
        if not rows:
            continue
        metrics = tuple(k[len("test/") :] for k in rows[0] if k.startswith("test/") and rows[0][k])
        groups.setdefault(metrics, []).append(label)
    return groups


def _stats(runs, label, metric):
    values = [float(run[f"test/{metric}"]) for run in runs if run["label"] == label]
    values = [v for v in values if not math.isnan(v)]
    mean = statistics.fmean(values) if values else math.nan
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std, len(values)


def summarize(runs, labels, settings=("",), comparisons=None, reference=None):
    """Markdown tables of test mean ± std per label and metric; best per column in bold.

    One table per setting (headed by its label when there are several) and metric set. With
    ``comparisons`` (:func:`~recbole_coldmeta.quick_start.significance.compare_runs`) against
    ``reference``: cells marked ▲ / ▼, and a paired table under each table.
    """
    lines = []
    for setting in settings:
        if setting:
            lines += [f"#### {setting}", ""]
        paired = None if comparisons is None else comparisons.get(setting, {})
        lines += _summarize_setting(_in_setting(runs, setting), labels, paired, reference)
    return "\n".join(lines)


def _summarize_setting(runs, labels, comparisons=None, reference=None):
    lines = []
    for metrics, group in _metric_sets(runs, labels).items():
        table = {}
        if comparisons is not None:
            table = {label: comparisons[label] for label in group if comparisons.get(label)}
            for metric in metrics:
                significance.correct({label: table[label].get(metric, {}) for label in table})
        lines.append("| model | " + " | ".join(metrics) + " | seeds |")
        lines.append("|---" * (len(metrics) + 2) + "|")
        stats = {label: [_stats(runs, label, m) for m in metrics] for label in group}
        best = []
        for column, metric in enumerate(metrics):
            means = [stats[label][column][0] for label in group]
            pick = min if significance.smaller_is_better(metric) else max
            best.append(pick(means))
        for label in group:
            cells = []
            for column, (mean, std, _) in enumerate(stats[label]):
                cell = f"{mean:.4f} ± {std:.4f}"
                cell = f"**{cell}**" if mean == best[column] else cell
                pooled = table.get(label, {}).get(metrics[column], {}).get("pooled")
                cells.append(cell + significance.mark(pooled, metrics[column]))
            seeds = stats[label][0][2]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {seeds} |")
        lines.append("")
        if table:
            lines += significance.paired_table(table, list(metrics), reference)
    return lines


def plot(runs, labels, path, settings=("",)):
    """Grouped bars (one group per metric, one bar per label) with std error bars; one row of
    panels per setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(s, list(_metric_sets(_in_setting(runs, s), labels).items())) for s in settings]
    width_panels = max(len(groups) for _, groups in rows) or 1
    figure, axes = plt.subplots(
        len(rows), width_panels, figsize=(6 * width_panels, 4 * len(rows)), squeeze=False
    )
    for row, (setting, groups) in enumerate(rows):
        _plot_row(axes[row], _in_setting(runs, setting), groups, setting)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)


def _plot_row(axes, runs, groups, setting):
    for axis, (metrics, group) in zip(axes, groups):
        width = 0.8 / len(group)
        for offset, label in enumerate(group):
            stats = [_stats(runs, label, metric) for metric in metrics]
            axis.bar(
                [i + offset * width for i in range(len(metrics))],
                [s[0] for s in stats],
                width,
                yerr=[s[1] for s in stats],
                capsize=3,
                label=label,
            )
        axis.set_xticks([i + 0.4 - width / 2 for i in range(len(metrics))])
        axis.set_xticklabels(metrics, rotation=30)
        axis.legend(fontsize=7)
        if setting:
            axis.set_title(setting)
