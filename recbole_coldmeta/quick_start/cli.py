"""Command line of ``run_recbole_coldmeta.py`` (RecBole's ``run_recbole.py`` flags plus ours).

What a user reads: the run's log on stdout (and in RecBole's ``log/`` file), the last stdout line
one JSON object naming model, dataset, seed and test metrics; on a bad input one line on stderr,
``error: ...``, and exit code 2; on SIGINT/SIGTERM one line on stderr naming the checkpoint to
``--resume`` from, and exit code 130/143.
"""

import argparse
import contextlib
import os
import signal
import sys

from recbole_coldmeta.utils import ColdMetaError
from recbole_coldmeta.utils.atomic import check_writable_file

#: Exit codes of a run stopped by a signal (128 + the signal's number, as shells report it).
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def build_parser():
    from recbole_coldmeta.registry import plugin_model_names

    parser = argparse.ArgumentParser(
        prog="run_recbole_coldmeta.py",
        description=(
            "Train and evaluate a recbole_coldmeta or RecBole model. Any other config key is "
            "given as --key=value (e.g. --epochs=1 --seed=7)."
        ),
        epilog=(
            f"recbole_coldmeta's models: {', '.join(plugin_model_names())}; any RecBole 1.2 "
            f"model (BPR, NeuMF, DeepFM, SASRec, ...) runs on the same split."
        ),
    )
    parser.add_argument("--model", "-m", default=None, help="model name, e.g. MeLU, CCML, BPR")
    group = parser.add_argument_group("data and outputs")
    group.add_argument(
        "--dataset",
        "-d",
        default=None,
        help="dataset name (default: ml-100k, bundled with RecBole)",
    )
    group.add_argument(
        "--data_path",
        default=None,
        help="folder holding <dataset>/<dataset>.inter (a config key, given here for --help)",
    )
    group.add_argument(
        "--config_files", default=None, help="config files, separated by spaces or commas"
    )
    group.add_argument(
        "--result_file", default=None, help="write the run's result as one JSON object to this path"
    )
    group.add_argument(
        "--resume",
        default=None,
        metavar="PATH",
        help="continue an interrupted run from the checkpoint it named (<checkpoint>-last.pth)",
    )
    group.add_argument(
        "--benchmark",
        default=None,
        help="run a benchmark file (models x seeds), e.g. properties/benchmark/ml-100k.yaml",
    )
    group.add_argument(
        "--output_dir", default="results", help="where --benchmark writes its outputs"
    )
    group = parser.add_argument_group("data-parallel training (RecBole's run_recbole.py flags)")
    group.add_argument("--nproc", type=int, default=1, help="processes on this machine")
    group.add_argument("--ip", default="localhost", help="address of the machine of rank 0")
    group.add_argument("--port", default="5678", help="rendezvous port on the machine of rank 0")
    group.add_argument(
        "--world_size", type=int, default=-1, help="processes on all machines (default: nproc)"
    )
    group.add_argument(
        "--group_offset", type=int, default=0, help="global rank of this machine's first process"
    )
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, as SIGINT raises KeyboardInterrupt."""


def _raise_terminated(signum, frame):
    raise _Terminated()


@contextlib.contextmanager
def user_facing_streams():
    """Inside: everything that would go to stderr (RecBole's log handler, Python warnings,
    progress bars) goes to stdout, and SIGTERM interrupts like SIGINT; so that after a failure
    the error line is the only thing on stderr."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with contextlib.redirect_stderr(sys.stdout):
            yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupt_exit_code(interrupt):
    """130 for SIGINT (Ctrl-C), 143 for SIGTERM, as shells report them."""
    stopped_by = interrupt.__cause__ or interrupt.__context__
    terminated = isinstance(interrupt, _Terminated) or isinstance(stopped_by, _Terminated)
    return EXIT_CODES[signal.SIGTERM if terminated else signal.SIGINT]


def main(argv=None):
    """Run one model; return the process exit code (0 on success, 2 on a user error, 130/143
    when interrupted by SIGINT/SIGTERM)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, overrides = build_parser().parse_known_args(argv)
    if args.data_path is not None:
        overrides.append(f"--data_path={args.data_path}")
    try:
        with user_facing_streams():
            if args.benchmark:
                return _benchmark(args, overrides)
            result = _run(args, overrides)
            if result is None:  # a machine without rank 0: rank 0's machine reports
                return 0
            from recbole_coldmeta.quick_start.quick_start import print_test_result, write_result

            if args.result_file:
                write_result(result, args.result_file)
            print_test_result(result)
            return 0
    except ColdMetaError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt as interrupt:
        if args.benchmark:
            message = (
                "interrupted; the benchmark's finished runs are kept in its runs.csv, and the "
                "same command runs the others"
            )
        else:
            message = str(interrupt) or "interrupted before training started; nothing to resume"
        print(message, file=sys.stderr, flush=True)
        return interrupt_exit_code(interrupt)


def _run(args, overrides):
    """Check the outputs, then train and test: the result dict (``None`` off rank 0)."""
    if args.result_file:
        check_writable_file(args.result_file, "--result_file")
    from recbole_coldmeta.quick_start.quick_start import run_coldmeta, run_coldmeta_parallel
    from recbole_coldmeta.utils import ConfigError

    config_files = args.config_files.replace(",", " ").split() if args.config_files else None
    if args.nproc > 1 or args.world_size > 0:
        if args.resume:
            raise ConfigError("--resume continues single-process runs; drop --nproc/--world_size.")
        return run_coldmeta_parallel(
            model=args.model,
            dataset=args.dataset,
            config_file_list=config_files,
            cmd_args=overrides,
            nproc=args.nproc,
            world_size=args.world_size,
            ip=args.ip,
            port=args.port,
            group_offset=args.group_offset,
        )
    return run_coldmeta(
        model=args.model,
        dataset=args.dataset,
        config_file_list=config_files,
        cmd_args=overrides,
        resume=args.resume,
    )


def _benchmark(args, overrides):
    from recbole_coldmeta.quick_start.benchmark import run_benchmark
    from recbole_coldmeta.utils import ConfigError

    if overrides or args.resume or args.result_file:
        raise ConfigError(
            f"--benchmark takes no config overrides, --resume or --result_file (got "
            f"{overrides + [a for a in (args.resume, args.result_file) if a]}); put config in "
            f"the benchmark file's config (a benchmark resumes on its own: finished runs are "
            f"skipped)."
        )
    folder = run_benchmark(args.benchmark, args.output_dir)
    with open(f"{folder}/table.md", encoding="utf-8") as f:
        print(f.read())
    names = ("runs.csv", "table.md", "plot.png", "kshot.md", "kshot.png", "breakdown.md",
             "breakdown.png", "users", "splits")  # fmt: skip
    outputs = [f"{folder}/{name}" for name in names if os.path.exists(f"{folder}/{name}")]
    print(f"benchmark outputs: {', '.join(outputs)}")
    return 0
