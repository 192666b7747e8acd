"""The side-by-side table of a parity run: mean ± std over seeds and the per-seed values."""

import os
import statistics


def mean_std(values):
    """``'0.7530 ± 0.0220'``: the mean and the sample standard deviation (0 for one value), as
    the benchmark tables (:func:`recbole_coldmeta.quick_start.benchmark.summarize`) give them."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {std:.4f}"


def parity_table(rows, seeds):
    """A markdown table, one line per run.

    Args:
        rows: ``(label, results)`` pairs, ``results`` mapping each seed to a dict with ``mae``,
            ``rmse`` and optionally ``best_test_mae`` (the number the authors' code reports);
            a seed without a result is shown as ``—`` and left out of the mean.
        seeds: the seeds, in column order.
    """
    per_seed = " | ".join(f"MAE {seed}" for seed in seeds)
    lines = [
        f"| run | test MAE | test RMSE | {per_seed} | their report (best test epoch) MAE |",
        "|---" * (len(seeds) + 4) + "|",
    ]
    for label, results in rows:
        done = [results[seed] for seed in seeds if seed in results]
        if done:
            mae = mean_std([r["mae"] for r in done])
            rmse = mean_std([r["rmse"] for r in done])
        else:
            mae = rmse = "—"
        cells = [f"{results[seed]['mae']:.4f}" if seed in results else "—" for seed in seeds]
        reported = [r["best_test_mae"] for r in done if "best_test_mae" in r]
        cells.append(mean_std(reported) if reported else "—")
        lines.append(f"| {label} | {mae} | {rmse} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def user_cold_report(title, rows, summaries, seeds):
    """The report of a user cold-start harness (MeLU, TaNP, MAMO): ``title``, the seeds, the
    first seed's split counts (``summaries[seed]["split_info"]``) and :func:`parity_table` of
    ``rows``, whose last column is the authors' last epoch."""
    table = parity_table(rows, seeds)
    table = table.replace("their report (best test epoch) MAE", "their last epoch MAE")
    info = summaries[seeds[0]]["split_info"]
    return (
        f"{title}, seeds {', '.join(map(str, seeds))}.\nSplit (seed {seeds[0]}): "
        f"{info['meta_train_users']} meta-train / {info['valid_users']} valid / "
        f"{info['test_users']} test users.\n\n{table}"
    )


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f".{os.path.basename(path)}.tmp")
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(temporary, path)
