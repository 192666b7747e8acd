"""The processes of a parity run: the authors' checkout, our runs' command line, running jobs
side by side, their results, the epoch chosen on validation, the JSON result file of an authors'
run, and the final table."""

import concurrent.futures
import json
import os
import subprocess
import sys

from recbole_coldmeta.benchmarks.parity.report import write_atomic
from recbole_coldmeta.utils import DataError

#: Our runs go through the command line's entry point (``run_recbole_coldmeta.py``).
OUR_ENTRY = "import sys; from recbole_coldmeta.quick_start.cli import main; sys.exit(main())"


def check_checkout(path, repository, needed, holding):
    """The checkout folder ``path`` of ``repository``, made absolute; ``ValueError`` when it is
    not a folder or lacks one of the files ``needed`` (``holding``: how the message describes
    the right folder)."""
    if not path or not os.path.isdir(path):
        raise ValueError(
            f"--authors_code={path!r} is not a folder: give a local checkout of {repository} "
            f"(e.g. git clone or git archive into a scratch folder)."
        )
    missing = [name for name in needed if not os.path.isfile(os.path.join(path, name))]
    if missing:
        raise ValueError(
            f"--authors_code={path!r} has no {', '.join(missing)}: it is not a checkout of "
            f"{repository} (the folder holding {holding})."
        )
    return os.path.abspath(path)


def finish(output, text, failed):
    """Write the parity report ``text`` to ``output`` (atomically) and stdout, name the
    ``failed`` jobs in it and on stderr; the exit code (1 when a job failed).

    NOTE: a job without a result (a diverging run: RecBole stops on a NaN loss) leaves ``—`` in
    its row; the report then names it with the last line of its log, so the table says why.
    """
    if failed:
        text += "\nRuns without a result (their rows show —): " + "; ".join(failed) + ".\n"
    write_atomic(output, text)
    sys.stdout.write(text)
    if failed:
        sys.stderr.write("failed: " + "; ".join(failed) + "\n")
        return 1
    return 0


def our_command(overrides):
    """The command line of one of our runs with config ``overrides`` (``--key=value`` each)."""
    return [sys.executable, "-c", OUR_ENTRY] + [f"--{k}={v}" for k, v in overrides.items()]


def our_job(folder, key, overrides):
    """The command of our run ``key`` in a seed's ``folder``: ``overrides`` plus quiet logging,
    its own checkpoint folder and its result file ``<folder>/<key>.json``."""
    return our_command(
        {
            **overrides,
            "state": "WARNING",
            "show_progress": False,
            "checkpoint_dir": os.path.join(folder, "saved", key),
            "result_file": os.path.join(folder, f"{key}.json"),
        }
    )


def our_rows(results, summaries, seeds, ours):
    """The table rows ``(label, {seed: {"mae", "rmse"}})`` of our runs ``ours`` (tuples that
    start with ``key, label``); ``DataError`` when a run's split is not the exported one."""
    rows = []
    for key, label, *_ in ours:
        row = {}
        for seed in seeds:
            if key in results[seed]:
                result = results[seed][key]
                if result.get("split") != summaries[seed]["split_info"]:
                    raise DataError(
                        f"{key}, seed {seed}: its split {result.get('split')} is not the "
                        f"exported one {summaries[seed]['split_info']}."
                    )
                row[seed] = {"mae": result["test_result"]["mae"],
                             "rmse": result["test_result"]["rmse"]}  # fmt: skip
        rows.append((label, row))
    return rows


def run_job(command, result_file, threads):
    """Run one job's process, its output in ``<result file>.log``; ``True`` when it wrote its
    result."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with open(f"{os.path.splitext(result_file)[0]}.log", "w", encoding="utf-8") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    return done.returncode == 0 and os.path.isfile(result_file)


def last_line(path):
    """The last non-empty line of the text file ``path`` (at most 200 characters), or ``no
    output``."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1][:200] if lines else "no output"


def run_pending(pending, jobs, logger, order=None):
    """Run the ``(key, seed, command, result file)`` jobs whose result file is missing,
    ``jobs`` at once (each with ``cpu_count / jobs`` threads), in ``order`` (a sort key) if
    given; returns the failed ones, each as a line naming its log."""
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    todo = [job for job in pending if not os.path.isfile(job[3])]
    if order is not None:
        todo.sort(key=order)
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = {pool.submit(run_job, job[2], job[3], threads): job for job in todo}
        for future in concurrent.futures.as_completed(futures):
            key, seed, _, result_file = futures[future]
            if not future.result():
                log = f"{os.path.splitext(result_file)[0]}.log"
                failed.append(f"{key} seed {seed}: {last_line(log)} (see {log})")
            logger.warning(f"parity: {key} seed {seed} done")
    return failed


def run_seeds(options, logger, export, plan, order=None):
    """Export each seed's split and run its jobs: ``(exported, results, failed)``.

    Args:
        options: the harness's options (``seeds``, ``work_dir``, ``jobs``).
        logger: where a finished job is logged.
        export: ``export(seed, data_dir)``, the seed's exported split (kept as
            ``exported[seed]``); a ``ColdMetaError`` propagates before any job runs.
        plan: ``plan(seed, data_dir, exported[seed])``, the seed's ``{key: (command, result
            file)}``.
        order: a sort key of the jobs (:func:`run_pending`).

    ``results`` is :func:`read_results`'s, ``failed`` :func:`run_pending`'s.
    """
    exported, pending = {}, []
    for seed in options.seeds:
        data_dir = os.path.join(options.work_dir, f"seed-{seed}", "data")
        exported[seed] = export(seed, data_dir)
        for key, (command, result_file) in plan(seed, data_dir, exported[seed]).items():
            pending.append((key, seed, command, result_file))
    failed = run_pending(pending, options.jobs, logger, order)
    return exported, read_results(pending, options.seeds), failed


def read_results(pending, seeds):
    """``{seed: {key: result}}`` of every pending job that wrote its result file."""
    results = {seed: {} for seed in seeds}
    for key, seed, _, result_file in pending:
        if os.path.isfile(result_file):
            with open(result_file, encoding="utf-8") as f:
                results[seed][key] = json.load(f)
    return results


def select_on_validation(curve):
    """The epoch (1-based) with the lowest validation MAE, the first on ties, and its metrics."""
    best = min(range(len(curve)), key=lambda epoch: curve[epoch]["valid_mae"])
    return {"epoch": best + 1, **curve[best]}


def write_json(path, result):
    """``result`` as JSON at ``path``, through a temporary file and ``os.replace``."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    os.replace(temporary, path)
