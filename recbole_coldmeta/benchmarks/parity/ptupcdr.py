"""Parity of our PTUPCDR and EMCDR with the authors' code (easezyc/WSDM2022-PTUPCDR), same split.

Usage::

    python -m recbole_coldmeta.benchmarks.parity.ptupcdr --authors_code=PATH
        [--seeds 2020 2021 2022] [--cold_user_ratio 0.2]
        [--config_files properties/dataset/amazon-dense-book2movie.yaml]
        [--output results/parity/ptupcdr.md] [--work_dir DIR] [--jobs 1]

``PATH`` is a local checkout of their repository (nothing is downloaded; nothing of theirs is in
this package). For each seed:

1. our split is built as every run builds it (``build_config`` / ``create_dataset`` /
   ``data_preparation`` with the seed and ``cold_user_ratio``) and exported in their input format
   (:mod:`.cdr_export`: ``train_src``, ``train_tgt``, ``train_meta``, ``valid``, ``test``);
2. their code trains on it twice (:mod:`.ptupcdr_official`, one process each): with their N(0, 1)
   embedding initialisation and with ours, N(0, ``init_std``); its only code adaptation is a
   numpy ``pad_sequences`` behind a stub ``tensorflow`` module; each of its EMCDR and PTUPCDR
   stages is read at the epoch with the best validation MAE (their loop reports the best test
   epoch; that number is kept in the last column);
3. ours trains on the same split (``run_recbole_coldmeta.py``'s entry point, one process each):
   PTUPCDR, EMCDR ``mapping: linear`` (their EMCDR) and ``mapping: mlp`` (our default), each with
   ``pretrain_refit`` False (pre-training early-stopped on a 10 % hold-out it never trains on) and
   True (then trained again on all rows for the selected number of epochs). Every run's split
   counts are checked against the export's.

The markdown table (test MAE / RMSE mean ± std over seeds, MAE per seed) is printed and written
to ``--output``; every run's result stays in ``--work_dir`` (default: ``--output`` without its
suffix), and a rerun skips the runs whose result is there. ``--jobs`` runs that many processes at
once (each with ``cpu_count / jobs`` threads).
"""

import argparse
import json
import os
import sys
import time
from logging import getLogger

from recbole_coldmeta.benchmarks.parity import ptupcdr_official
from recbole_coldmeta.benchmarks.parity.cdr_export import SPLIT_FILE
from recbole_coldmeta.benchmarks.parity.jobs import (
    finish,
    our_job,
    our_rows,
    run_seeds,
)
from recbole_coldmeta.benchmarks.parity.report import parity_table
from recbole_coldmeta.utils import ColdMetaError

MODULE = "recbole_coldmeta.benchmarks.parity.ptupcdr"
#: Our runs: (key, label, model, config overrides).
OURS = [
    (f"ours-{model.lower()}{suffix}-refit{refit}", f"ours {model}{label} (refit {refit})", model,
     {**extra, "pretrain_refit": refit})
    for model, suffix, label, extra in (
        ("PTUPCDR", "", "", {}),
        ("EMCDR", "-linear", " linear", {"mapping": "linear"}),
        ("EMCDR", "-mlp", " mlp", {"mapping": "mlp"}),
    )
    for refit in (False, True)
]  # fmt: skip
#: Runs started first (every seed), so that an interrupted run has the central comparison.
PRIORITY = ("official-init0.1", "ours-ptupcdr-refitTrue", "ours-ptupcdr-refitFalse")
#: Table rows of the authors' code: (label, init key, stage).
OFFICIAL_ROWS = [
    ("official PTUPCDR, N(0, 1) init (theirs)", "official-init1", "PTUPCDR"),
    ("official PTUPCDR, N(0, 0.1) init (ours)", "official-init0.1", "PTUPCDR"),
    ("official EMCDR (linear), N(0, 1) init", "official-init1", "EMCDR"),
    ("official EMCDR (linear), N(0, 0.1) init", "official-init0.1", "EMCDR"),
]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    parser.add_argument("--authors_code", required=True, help="checkout of WSDM2022-PTUPCDR")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    parser.add_argument("--cold_user_ratio", type=float, default=0.2)
    parser.add_argument(
        "--config_files", nargs="+", default=["properties/dataset/amazon-dense-book2movie.yaml"]
    )
    parser.add_argument("--output", default="results/parity/ptupcdr.md")
    parser.add_argument("--work_dir", default=None, help="default: --output without its suffix")
    parser.add_argument("--jobs", type=int, default=1, help="processes at once")
    options = parser.parse_args(argv)
    options.work_dir = options.work_dir or os.path.splitext(options.output)[0]
    return options


def export_seed(options, seed, folder):
    """Build our split for ``seed``, export it into ``folder`` (kept if already there); returns
    ``(split summary, our init_std)``."""
    from recbole_coldmeta.benchmarks.parity.cdr_export import export_ptupcdr_split
    from recbole_coldmeta.data import create_dataset, data_preparation
    from recbole_coldmeta.quick_start import build_config

    config_dict = {"seed": seed, "cold_user_ratio": options.cold_user_ratio, "state": "WARNING"}
    config = build_config("PTUPCDR", None, options.config_files, config_dict)
    summary_file = os.path.join(folder, SPLIT_FILE)
    if os.path.isfile(summary_file):
        with open(summary_file, encoding="utf-8") as f:
            return json.load(f), config["init_std"]
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    summary = export_ptupcdr_split(
        config, train_data.dataset, valid_data.dataset, test_data.dataset, folder
    )
    return summary, config["init_std"]


def plan_jobs(options, seed, data_dir, init_std):
    """``{key: (command, result file)}`` of one seed's runs."""
    folder = os.path.dirname(data_dir)
    jobs = {}
    for key, std in (("official-init0.1", init_std), ("official-init1", None)):
        command = [
            sys.executable, "-m", ptupcdr_official.__name__,
            f"--authors_code={options.authors_code}", f"--data_dir={data_dir}",
            f"--seed={seed}", f"--result_file={folder}/{key}.json",
        ] + ([f"--init_std={std}"] if std is not None else [])  # fmt: skip
        jobs[key] = command
    for key, _, model, extra in OURS:
        overrides = {
            "model": model,
            "config_files": ",".join(options.config_files),
            "seed": seed,
            "cold_user_ratio": options.cold_user_ratio,
            **extra,
        }
        jobs[key] = our_job(folder, key, overrides)
    return {key: (command, os.path.join(folder, f"{key}.json")) for key, command in jobs.items()}


def collect(results, summaries, seeds):
    """The table's rows from the runs' result files (``results[seed][key]``)."""
    rows = []
    for label, key, stage in OFFICIAL_ROWS:
        row = {}
        for seed in seeds:
            if key in results[seed]:
                selected = results[seed][key]["stages"][stage]["selected"]
                reported = results[seed][key]["their_results"][f"{stage.lower()}_mae"]
                row[seed] = {
                    "mae": selected["test_mae"],
                    "rmse": selected["test_rmse"],
                    "best_test_mae": reported,
                }
        rows.append((label, row))
    return rows + our_rows(results, summaries, seeds, OURS)


def split_line(summaries, seeds):
    counts = {
        (s["train_overlap_users"], s["valid_users"], s["test_users"]) for s in summaries.values()
    }
    text = "; ".join(f"{a} train / {b} valid / {c} test overlapping users" for a, b, c in counts)
    empty = summaries[seeds[0]]["empty_history_users"]
    return (
        f"Split: {text} (every seed); seed {seeds[0]}: {empty['test.csv']} test, "
        f"{empty['valid.csv']} valid and {empty['train_meta.csv']} train overlap users have no "
        f"source item rated above 3."
    )


def main(argv=None):
    """Run the parity harness; returns the exit code (2: a bad ``--authors_code``)."""
    options = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        options.authors_code = ptupcdr_official.check_authors_code(options.authors_code)
    except ValueError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    start = time.perf_counter()
    try:
        exported, results, failed = run_seeds(
            options,
            getLogger(MODULE),
            lambda seed, data_dir: export_seed(options, seed, data_dir),
            lambda seed, data_dir, split: plan_jobs(options, seed, data_dir, split[1]),
            order=lambda job: (PRIORITY.index(job[0]) if job[0] in PRIORITY else 3, job[1]),
        )
    except ColdMetaError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    summaries = {seed: summary for seed, (summary, _) in exported.items()}  # (summary, init_std)
    table = parity_table(collect(results, summaries, options.seeds), options.seeds)
    header = (
        f"PTUPCDR / EMCDR parity, {' '.join(options.config_files)}, β = "
        f"{options.cold_user_ratio:.0%}, seeds {', '.join(map(str, options.seeds))}.\n"
        f"{split_line(summaries, options.seeds)}\n\n"
    )
    seconds = time.perf_counter() - start
    every_run = [run for runs in results.values() for run in runs.values()]
    theirs = sum(run["seconds"] for run in every_run if "stages" in run)
    ours = sum(run["train_seconds"] for run in every_run if "train_seconds" in run)
    footer = (
        f"\nWall time of this invocation: {seconds / 60:.1f} min ({options.jobs} job(s), finished "
        f"runs skipped); the runs' own time, summed: their code {theirs / 60:.1f} min, ours "
        f"{ours / 60:.1f} min (training).\n"
    )
    return finish(options.output, header + table + footer, failed)


if __name__ == "__main__":
    sys.exit(main())
