"""Parity of our MeLU with the authors' code (hoyeoplee/MeLU), same ML-1M split.

Usage::

    python -m recbole_coldmeta.benchmarks.parity.melu --authors_code=PATH
        [--seeds 2020] [--test_state user_cold_testing] [--raw_dir ../shared/datasets/movielens-1m]
        [--epochs 20] [--output results/parity/melu.md] [--work_dir DIR] [--jobs 1]

``PATH`` is a local checkout of their repository (nothing is downloaded; nothing of theirs is in
this package). For each seed:

1. our split is built as every run builds it (``build_config("MeLU", "ml-1m")`` /
   ``create_dataset`` / ``data_preparation`` with the seed and ``test_state``) and exported
   (:mod:`.melu_export`);
2. their code trains on it (:mod:`.melu_official`, one process: their model, their local and
   global update, their configuration; the adaptations are listed there), the epoch chosen on
   our validation users;
3. ours trains on the same split (``run_recbole_coldmeta.py``'s entry point, one process each):
   MeLU at our defaults, MeLU configured as theirs (:data:`THEIRS`: their features, no item id,
   their learning rates, one local step, first order, batches of 32 tasks, 20 epochs), and the
   bias baseline ``UserItemBias``. Every run's split counts are checked against the export's.

The markdown table (test MAE / RMSE mean ± std over seeds, MAE per seed; for their code, the
last epoch's MAE in the last column: what their loop, which has no validation, would report) is
printed and written to ``--output``; every run's result stays in ``--work_dir`` (default:
``--output`` without its suffix), and a rerun skips the runs whose result is there.
"""

import argparse
import os
import sys
import time
from logging import getLogger

from recbole_coldmeta.benchmarks.parity import melu_official
from recbole_coldmeta.benchmarks.parity.jobs import (
    finish,
    our_job,
    our_rows,
    run_seeds,
)
from recbole_coldmeta.benchmarks.parity.melu_export import export_seed
from recbole_coldmeta.benchmarks.parity.report import user_cold_report
from recbole_coldmeta.utils import ColdMetaError

MODULE = "recbole_coldmeta.benchmarks.parity.melu"
#: Our MeLU configured as their ``options.config`` and features (``embedding_dim`` 32 and the
#: two hidden layers of 64 are our defaults too). Their meta-gradient is first order: the fast
#: weights reach the query loss through ``load_state_dict``, which cuts the graph.
THEIRS = {
    "item_fields": "['rated','genre','director','actor']",
    "user_fields": "['gender','age','occupation','zip_code']",
    "use_item_id": False,
    "learning_rate": 5e-5,
    "local_lr": 5e-6,
    "local_steps": 1,
    "first_order": True,
    "task_batch_size": 32,
    "epochs": 20,
    "stopping_step": 20,
    "prior": "global_mean",  # their network predicts the rating; ours adds it to a prior
}
#: Our runs: (key, label, model, config overrides).
OURS = [
    ("ours-melu", "ours MeLU (our defaults)", "MeLU", {}),
    ("ours-melu-theirs", "ours MeLU (configured as theirs)", "MeLU", THEIRS),
    ("ours-useritembias", "UserItemBias", "UserItemBias", {}),
]


def parse_args(argv):
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    parser.add_argument("--authors_code", required=True, help="checkout of hoyeoplee/MeLU")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020])
    parser.add_argument("--test_state", default="user_cold_testing")
    parser.add_argument("--raw_dir", default=None, help="default: the ml-1m converter's raw folder")
    parser.add_argument("--epochs", type=int, default=None, help="their epochs (default: theirs)")
    parser.add_argument("--output", default="results/parity/melu.md")
    parser.add_argument("--work_dir", default=None, help="default: --output without its suffix")
    parser.add_argument("--jobs", type=int, default=1, help="processes at once")
    options = parser.parse_args(argv)
    options.work_dir = options.work_dir or os.path.splitext(options.output)[0]
    if options.raw_dir is None:
        from recbole_coldmeta.data.converters import default_raw_dir

        options.raw_dir = str(default_raw_dir("ml-1m"))
    return options


def plan_jobs(options, seed, data_dir):
    """``{key: (command, result file)}`` of one seed's runs."""
    folder = os.path.dirname(data_dir)
    official = [
        sys.executable, "-m", melu_official.__name__, f"--authors_code={options.authors_code}",
        f"--data_dir={data_dir}", f"--raw_dir={options.raw_dir}", f"--seed={seed}",
        f"--result_file={folder}/official.json",
    ] + ([f"--epochs={options.epochs}"] if options.epochs else [])  # fmt: skip
    jobs = {"official": official}
    for key, _, model, extra in OURS:
        overrides = {
            "model": model,
            "dataset": "ml-1m",
            "seed": seed,
            "test_state": options.test_state,
            **extra,
        }
        jobs[key] = our_job(folder, key, overrides)
    return {key: (command, os.path.join(folder, f"{key}.json")) for key, command in jobs.items()}


def collect(results, summaries, seeds):
    """The table's rows from the runs' result files (``results[seed][key]``)."""
    official = {}
    for seed in seeds:
        if "official" in results[seed]:
            run = results[seed]["official"]
            selected = run["selected"]
            official[seed] = {"mae": selected["test_mae"], "rmse": selected["test_rmse"],
                              "best_test_mae": run["last"]["test_mae"]}  # fmt: skip
    rows = [("official MeLU (their code and configuration)", official)]
    return rows + our_rows(results, summaries, seeds, OURS)


def main(argv=None):
    """Run the parity harness; returns the exit code (2: a bad ``--authors_code``)."""
    options = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        options.authors_code = melu_official.check_authors_code(options.authors_code)
        melu_official.raw_file(options.raw_dir, "movies_extrainfos.dat")
        melu_official.raw_file(options.raw_dir, "users.dat")
    except ValueError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    start = time.perf_counter()
    state = {"test_state": options.test_state}
    try:
        summaries, results, failed = run_seeds(
            options,
            getLogger(MODULE),
            lambda seed, data_dir: export_seed("MeLU", "ml-1m", seed, data_dir, state),
            lambda seed, data_dir, _: plan_jobs(options, seed, data_dir),
        )
    except ColdMetaError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    title = f"MeLU parity, ml-1m {options.test_state}"
    report = user_cold_report(
        title, collect(results, summaries, options.seeds), summaries, options.seeds
    )
    seconds = time.perf_counter() - start
    speeds = [r["official"]["tasks_per_second"] for r in results.values() if "official" in r]
    footer = (
        f"\nWall time of this invocation: {seconds / 60:.1f} min ({options.jobs} job(s), finished "
        f"runs skipped). Their training: {', '.join(map(str, speeds)) or '—'} tasks/s.\n"
    )
    return finish(options.output, report + footer, failed)


if __name__ == "__main__":
    sys.exit(main())
