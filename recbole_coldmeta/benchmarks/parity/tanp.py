"""Parity of our TaNP with the authors' code (IIEdm/TaNP), same user cold-start split.

Usage::

    python -m recbole_coldmeta.benchmarks.parity.tanp --authors_code=PATH
        [--seeds 2020] [--dataset ml-100k] [--epochs 100]
        [--output results/parity/tanp.md] [--work_dir DIR] [--jobs 1]

``PATH`` is a local checkout of their repository (nothing is downloaded; nothing of theirs is in
this package). For each seed:

1. our split is built as every run builds it (``build_config("TaNP", dataset)`` /
   ``create_dataset`` / ``data_preparation`` with the seed: our default user cold-start
   protocol) and exported as ``user, item, rating, role`` rows (:mod:`.melu_export`);
2. their code trains on it (:mod:`.tanp_official`, one process each: their ``Trainer``, their
   ``train.sh`` hyper-parameters, their one-hot item ⊕ user input built from our split; the
   adaptations are listed there), the epoch chosen on our validation users; once as it is, once
   with its output layer's bias starting at the training mean, where ours starts
   (``--start_at_mean``, a diagnostic: their decoder otherwise first learns the rating scale);
3. ours trains on the same split (``run_recbole_coldmeta.py``'s entry point, one process each):
   TaNP at our defaults, TaNP configured as theirs (:func:`theirs_as_ours`: their sizes, learning
   rate, batch, clusters, temperature and lambda from their ``train.sh``, FiLM, ids only, their
   number of epochs without early stopping), the bias baseline ``UserItemBias`` and
   ``GlobalMean`` (the floor: a rating model that learned nothing of the users or items). Every
   run's split counts are checked against the export's.

The markdown table (test MAE / RMSE mean ± std over seeds, MAE per seed; for their code, the
last epoch's MAE in the last column: what their loop, which has no validation, ends with) is
printed and written to ``--output``; every run's result stays in ``--work_dir`` (default:
``--output`` without its suffix), and a rerun skips the runs whose result is there. ``--jobs``
runs that many processes at once, each with ``cpu_count / jobs`` threads. NOTE: their loop over
one task at a time is fastest on one thread (``--jobs 2`` on two cores: a batch of 32 tasks took
0.19 s on one thread, 5.8 s on two, on a loaded 2-core machine).
"""

import argparse
import os
import sys
import time
from logging import getLogger

from recbole_coldmeta.benchmarks.parity import tanp_official
from recbole_coldmeta.benchmarks.parity.jobs import (
    finish,
    our_job,
    our_rows,
    run_seeds,
)
from recbole_coldmeta.benchmarks.parity.melu_export import export_seed
from recbole_coldmeta.benchmarks.parity.report import user_cold_report
from recbole_coldmeta.utils import ColdMetaError

MODULE = "recbole_coldmeta.benchmarks.parity.tanp"
#: Runs of their code: (key, label, extra arguments of :mod:`.tanp_official`).
OFFICIAL = [
    ("official", "official TaNP (their code and train.sh)", []),
    ("official-at-mean", "official TaNP, output bias starting at the mean", ["--start_at_mean"]),
]
#: Our runs: (key, label, model, configured as theirs).
OURS = [
    ("ours-tanp", "ours TaNP (our defaults)", "TaNP", False),
    ("ours-tanp-theirs", "ours TaNP (configured as theirs)", "TaNP", True),
    ("ours-useritembias", "UserItemBias", "UserItemBias", False),
    ("ours-globalmean", "GlobalMean", "GlobalMean", False),
]


def theirs_as_ours(their, epochs):
    """Our TaNP keys set to their ``train.sh`` values (``their``: :func:`.tanp_official.
    their_config`), trained ``epochs`` epochs, the best validation epoch kept.

    NOTE: their input is the one-hot item id and user id; ours embeds the item id only (no user or
    item feature: we embed no user id, a cold user's would be untrained). Their ``NP`` builds the
    FiLM ``Decoder``. ``ValueError`` when their three latent widths differ (ours has one).
    """
    widths = {their["z1_dim"], their["z2_dim"], their["z_dim"]}
    if len(widths) != 1:
        raise ValueError(
            f"their train.sh has z1_dim, z2_dim, z_dim = {their['z1_dim']}, {their['z2_dim']}, "
            f"{their['z_dim']}: our TaNP has one latent_size, so it cannot be configured as "
            f"theirs; use a train.sh with equal widths."
        )
    return {
        "embedding_size": their["first_embedding_dim"],
        "feature_size": their["second_embedding_dim"],
        "latent_hidden_sizes": [their["enc_h1_dim"], their["enc_h2_dim"]],
        "latent_size": their["z_dim"],
        "task_hidden_sizes": [their["taskenc_h1_dim"], their["taskenc_h2_dim"]],
        "task_size": their["taskenc_final_dim"],
        "n_clusters": their["clusters_k"],
        "cluster_temperature": their["temperature"],
        "lambda_cluster": their["lambda"],
        "decoder_hidden_sizes": [their["dec_h1_dim"], their["dec_h2_dim"], their["dec_h3_dim"]],
        "modulation": "film",
        "dropout_prob": their["dropout_rate"],
        "learning_rate": their["lr"],
        "task_batch_size": their["batch_size"],
        "user_fields": [],
        "item_fields": [],
        "use_item_id": True,
        "epochs": epochs,
        "stopping_step": epochs,
    }


def parse_args(argv):
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    parser.add_argument("--authors_code", required=True, help="checkout of IIEdm/TaNP")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020])
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=None, help="their epochs (default: theirs)")
    parser.add_argument("--output", default="results/parity/tanp.md")
    parser.add_argument("--work_dir", default=None, help="default: --output without its suffix")
    parser.add_argument("--jobs", type=int, default=1, help="processes at once")
    options = parser.parse_args(argv)
    options.work_dir = options.work_dir or os.path.splitext(options.output)[0]
    return options


def plan_jobs(options, seed, data_dir, theirs):
    """``{key: (command, result file)}`` of one seed's runs (``theirs``: our keys set as their
    configuration)."""
    folder = os.path.dirname(data_dir)
    jobs = {}
    for key, _, extra in OFFICIAL:
        jobs[key] = [
            sys.executable, "-m", tanp_official.__name__, f"--authors_code={options.authors_code}",
            f"--data_dir={data_dir}", f"--seed={seed}", f"--result_file={folder}/{key}.json",
        ] + ([f"--epochs={options.epochs}"] if options.epochs else []) + extra  # fmt: skip
    for key, _, model, configured_as_theirs in OURS:
        overrides = {
            "model": model,
            "dataset": options.dataset,
            "seed": seed,
            **(theirs if configured_as_theirs else {}),
        }
        jobs[key] = our_job(folder, key, overrides)
    return {key: (command, os.path.join(folder, f"{key}.json")) for key, command in jobs.items()}


def collect(results, summaries, seeds):
    """The table's rows from the runs' result files (``results[seed][key]``)."""
    rows = []
    for key, label, _ in OFFICIAL:
        official, chosen = {}, []
        for seed in seeds:
            if key in results[seed]:
                run = results[seed][key]
                selected = run["selected"]
                official[seed] = {"mae": selected["test_mae"], "rmse": selected["test_rmse"],
                                  "best_test_mae": run["last"]["test_mae"]}  # fmt: skip
                chosen.append(f"{selected['epoch']} of {run['epochs']}")
        if chosen:
            label += f"; epoch {', '.join(chosen)} chosen on validation"
        rows.append((label, official))
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
    official = [runs["official"] for runs in results.values() if "official" in runs]
    speeds = ", ".join(str(run["tasks_per_second"]) for run in official) or "—"
    tasks = ", ".join(str(run["training_tasks"]) for run in official) or "—"
    return (
        f"\nWall time of this invocation: {seconds / 60:.1f} min ({jobs} job(s), finished runs "
        f"skipped). Minutes a run: {'; '.join(took) or '—'}. Their code: {speeds} tasks/s of "
        f"training, {tasks} training tasks.\n"
    )


def main(argv=None):
    """Run the parity harness; returns the exit code (2: a bad ``--authors_code`` or dataset)."""
    options = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        options.authors_code = tanp_official.check_authors_code(options.authors_code)
        their = tanp_official.their_config(options.authors_code)
        theirs = theirs_as_ours(their, options.epochs or their["num_epoch"])
    except ValueError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    start = time.perf_counter()
    try:
        summaries, results, failed = run_seeds(
            options,
            getLogger(MODULE),
            lambda seed, data_dir: export_seed("TaNP", options.dataset, seed, data_dir),
            lambda seed, data_dir, _: plan_jobs(options, seed, data_dir, theirs),
        )
    except ColdMetaError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    title = f"TaNP parity, {options.dataset} user cold start"
    report = user_cold_report(
        title, collect(results, summaries, options.seeds), summaries, options.seeds
    )
    seconds = time.perf_counter() - start
    return finish(options.output, report + footer(results, seconds, options.jobs), failed)


if __name__ == "__main__":
    sys.exit(main())
