"""Parity of our MAMO with the authors' code (dongmanqing/Code-for-MAMO), same user cold-start
split.

Usage::

    python -m recbole_coldmeta.benchmarks.parity.mamo --authors_code=PATH
        [--seeds 2020] [--dataset ml-100k] [--raw_dir DATASET_FOLDER] [--epochs 3]
        [--all_users_epochs 10] [--output results/parity/mamo.md] [--work_dir DIR] [--jobs 1]

``PATH`` is a local checkout of their repository (nothing is downloaded; nothing of theirs is in
this package). For each seed:

1. our split is built as every run builds it (``build_config("MAMO", dataset)`` with the seed:
   our default user cold-start protocol) and exported as ``user, item, rating, role`` rows
   (:func:`.melu_export.export_seed`);
2. their code trains on it (:mod:`.mamo_official`, one process each: their model, memories,
   local and global update and ``configs.py``, their ML-1M feature encoding applied to the
   dataset's user and item files in ``--raw_dir`` (default: the dataset's folder); the
   adaptations are listed there), the epoch chosen on our validation users. Twice: as their loop
   is published (the first 100 training users every epoch, their 3 epochs; ``--epochs``), and
   over every training user each epoch (``--all_users_epochs``, capped: on ml-100k an epoch
   and its two evaluations took 2.3 min on one thread of a loaded 2-core machine). Each run is
   scored both as their test function starts a cold user and as their training does (both
   memories read at ``φ``);
3. ours trains on the same split (``run_recbole_coldmeta.py``'s entry point, one process each):
   MAMO at our defaults, MAMO configured as theirs (:func:`theirs_as_ours`) with their global
   SGD step and with our Adam, the bias baseline ``UserItemBias`` and ``GlobalMean``. Every
   run's split counts are checked against the export's.

The markdown table (test MAE / RMSE mean ± std over seeds, MAE per seed; for their code, the
last epoch's MAE in the last column: what their loop, which has no validation, ends with) is
printed and written to ``--output``; every run's result stays in ``--work_dir`` (default:
``--output`` without its suffix), and a rerun skips the runs whose result is there. ``--jobs``
runs that many processes at once, each with ``cpu_count / jobs`` threads.
"""

import argparse
import ast
import os
import sys
import time
from logging import getLogger

from recbole_coldmeta.benchmarks.parity import mamo_official
from recbole_coldmeta.benchmarks.parity.jobs import (
    finish,
    our_job,
    our_rows,
    run_seeds,
)
from recbole_coldmeta.benchmarks.parity.melu_export import export_seed
from recbole_coldmeta.benchmarks.parity.report import user_cold_report
from recbole_coldmeta.utils import ColdMetaError

MODULE = "recbole_coldmeta.benchmarks.parity.mamo"
#: Runs of their code: (key, label, their users per epoch, all users).
OFFICIAL = [
    ("official", "official MAMO (their code and configs.py, 100 training users an epoch)", False),
    ("official-all-users", "official MAMO, every training user each epoch", True),
]
#: The two ways a cold user of their model starts: (result key suffix, label).
STARTS = [
    ("", "as their test starts a user"),
    ("_memories", "as their training starts a user (memories read at φ)"),
]
#: Our MAMO configured as theirs, but with our global update (RecBole's Adam, our learning rate
#: and batch of tasks): the keys :func:`theirs_as_ours` sets for their SGD step.
THEIR_GLOBAL_STEP = ("learner", "learning_rate", "task_batch_size")
#: Our runs: (key, label, model, configured as theirs: None, "sgd" or "adam").
OURS = [
    ("ours-mamo", "ours MAMO (our defaults)", "MAMO", None),
    ("ours-mamo-theirs", "ours MAMO (configured as theirs, their SGD step)", "MAMO", "sgd"),
    ("ours-mamo-theirs-adam", "ours MAMO (configured as theirs, our Adam)", "MAMO", "adam"),
    ("ours-useritembias", "UserItemBias", "UserItemBias", None),
    ("ours-globalmean", "GlobalMean", "GlobalMean", None),
]


def theirs_as_ours(settings, epochs):
    """Our MAMO keys set to their ``configs.config_settings`` (``settings``), trained ``epochs``
    epochs, the best validation epoch kept.

    NOTE: their features only (the dataset's user and item fields; no item id, which their
    model has not); their first-order meta-gradient (their ``LOCALUpdate.train`` takes the query
    gradient at the adapted weights). Their global step, ``φ - λ Σ_u g_u`` over the 100 users of
    an epoch, is SGD at ``λ × 100`` on the mean loss of batches of 100 tasks. Their local Adam on
    mini-batches of 5 has no key of ours: ``local_steps`` plain steps of ``rho`` on all support
    rows; their cross-entropy over 5 levels neither (ours regresses the rating).
    """
    users = mamo_official.THEIR_USERS_PER_EPOCH
    return {
        "embedding_size": settings["embedding_dim"],
        "n_layer": settings["n_layer"],
        "memory_slots": settings["n_k"],
        "profile_memory_rate": settings["alpha"],
        "bias_memory_rate": settings["beta"],
        "task_memory_rate": settings["gamma"],
        "bias_scale": settings["tao"],
        "local_lr": settings["rho"],
        "local_steps": settings["n_inner_loop"],
        "first_order": True,
        "use_item_id": False,
        "learner": "sgd",
        "learning_rate": settings["lamda"] * users,
        "task_batch_size": users,
        "epochs": epochs,
        "stopping_step": epochs,
    }


def their_settings(authors_code):
    """Their ``configs.config_settings``, read from the checkout (imported in a process of its
    own there; here parsed, so that this process imports nothing of theirs); ``ValueError``
    when the file holds no such dict."""
    path = os.path.join(authors_code, "configs.py")
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ["config_settings"]:
            return ast.literal_eval(node.value)
    raise ValueError(
        f"{path} sets no config_settings: give a checkout of dongmanqing/Code-for-MAMO whose "
        f"configs.py holds their hyper-parameters."
    )


def parse_args(argv):
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    parser.add_argument("--authors_code", required=True, help="checkout of Code-for-MAMO")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--raw_dir", default=None, help="default: the dataset's folder")
    parser.add_argument("--epochs", type=int, default=None, help="their epochs (default: theirs)")
    parser.add_argument("--all_users_epochs", type=int, default=10, help="epochs of every user")
    parser.add_argument("--output", default="results/parity/mamo.md")
    parser.add_argument("--work_dir", default=None, help="default: --output without its suffix")
    parser.add_argument("--jobs", type=int, default=1, help="processes at once")
    options = parser.parse_args(argv)
    options.work_dir = options.work_dir or os.path.splitext(options.output)[0]
    return options


def dataset_folder(dataset):
    """The folder our runs read ``dataset``'s atomic files from (its ``data_path``)."""
    from recbole_coldmeta.quick_start import build_config

    return build_config("MAMO", dataset, None, {"state": "WARNING"})["data_path"]


def check_raw_dir(raw_dir):
    """``ValueError`` naming the file when ``raw_dir`` lacks the dataset's user or item file."""
    name = os.path.basename(os.path.normpath(raw_dir))
    for suffix in ("user", "item"):
        if not os.path.isfile(os.path.join(raw_dir, f"{name}.{suffix}")):
            raise ValueError(
                f"--raw_dir={raw_dir!r} has no {name}.{suffix}: give the dataset folder with its "
                f"user and item files (their model needs user and item features)."
            )


def plan_jobs(options, seed, data_dir, theirs):
    """``{key: (command, result file)}`` of one seed's runs (``theirs``: our keys set as their
    configuration)."""
    folder = os.path.dirname(data_dir)
    jobs = {}
    for key, _, all_users in OFFICIAL:
        epochs = options.all_users_epochs if all_users else options.epochs
        jobs[key] = [
            sys.executable, "-m", mamo_official.__name__, f"--authors_code={options.authors_code}",
            f"--data_dir={data_dir}", f"--raw_dir={options.raw_dir}", f"--seed={seed}",
            f"--result_file={folder}/{key}.json",
        ] + ([f"--epochs={epochs}"] if epochs else []) + (
            ["--users_per_epoch=0"] if all_users else []
        )  # fmt: skip
    for key, _, model, configured in OURS:
        overrides = {"model": model, "dataset": options.dataset, "seed": seed}
        if configured == "sgd":
            overrides.update(theirs)
        elif configured == "adam":
            overrides.update({k: v for k, v in theirs.items() if k not in THEIR_GLOBAL_STEP})
        jobs[key] = our_job(folder, key, overrides)
    return {key: (command, os.path.join(folder, f"{key}.json")) for key, command in jobs.items()}


def collect(results, summaries, seeds):
    """The table's rows from the runs' result files (``results[seed][key]``): each run of their
    code twice, once per start (:data:`STARTS`)."""
    rows = []
    for key, label, _ in OFFICIAL:
        for suffix, start in STARTS:
            official, chosen = {}, []
            for seed in seeds:
                if key in results[seed]:
                    run = results[seed][key]
                    selected, last = run[f"selected{suffix}"], run[f"last{suffix}"]
                    official[seed] = {"mae": selected["test_mae"], "rmse": selected["test_rmse"],
                                      "best_test_mae": last["test_mae"]}  # fmt: skip
                    chosen.append(f"{selected['epoch']} of {run['epochs']}")
            text = f"{label}, {start}"
            if chosen:
                text += f"; epoch {', '.join(chosen)} chosen on validation"
            rows.append((text, official))
    return rows + our_rows(results, summaries, seeds, OURS)


def footer(results, seconds, jobs):
    """The wall time of this invocation and the minutes each run took (their runs whole, ours
    training), per seed."""
    took = []
    for key in [entry[0] for entry in OFFICIAL + OURS]:
        field = "seconds" if key.startswith("official") else "train_seconds"
        minutes = [f"{runs[key][field] / 60:.1f}" for runs in results.values() if key in runs]
        if minutes:
            took.append(f"{key} {', '.join(minutes)}")
    key = "official-all-users"
    official = [runs[key] for runs in results.values() if key in runs]
    speeds = ", ".join(str(run["tasks_per_second"]) for run in official) or "—"
    tasks = ", ".join(str(run["training_tasks"]) for run in official) or "—"
    return (
        f"\nWall time of this invocation: {seconds / 60:.1f} min ({jobs} job(s), finished runs "
        f"skipped). Minutes a run: {'; '.join(took) or '—'}. Their code: {speeds} tasks/s of "
        f"training, {tasks} training tasks.\n"
    )


def main(argv=None):
    """Run the parity harness; returns the exit code (2: a bad ``--authors_code``, ``--raw_dir``
    or dataset)."""
    options = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        options.authors_code = mamo_official.check_authors_code(options.authors_code)
        settings = their_settings(options.authors_code)
        theirs = theirs_as_ours(settings, options.all_users_epochs)
        options.raw_dir = options.raw_dir or dataset_folder(options.dataset)
        check_raw_dir(options.raw_dir)
    except (ValueError, ColdMetaError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    start = time.perf_counter()
    try:
        summaries, results, failed = run_seeds(
            options,
            getLogger(MODULE),
            lambda seed, data_dir: export_seed("MAMO", options.dataset, seed, data_dir),
            lambda seed, data_dir, _: plan_jobs(options, seed, data_dir, theirs),
        )
    except ColdMetaError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    title = f"MAMO parity, {options.dataset} user cold start"
    report = user_cold_report(
        title, collect(results, summaries, options.seeds), summaries, options.seeds
    )
    seconds = time.perf_counter() - start
    return finish(options.output, report + footer(results, seconds, options.jobs), failed)


if __name__ == "__main__":
    sys.exit(main())
