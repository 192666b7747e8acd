"""Command line of ``run_hyper_coldmeta.py`` (RecBole's ``run_hyper.py`` flags plus ours)."""

import argparse
import json
import sys

from recbole_coldmeta.quick_start.cli import interrupt_exit_code, user_facing_streams
from recbole_coldmeta.quick_start.hyper.hyperopt_runner import run_hyper
from recbole_coldmeta.utils import ColdMetaError


def build_parser():
    """RecBole's ``run_hyper.py`` flags plus ``--algo``, ``--max_evals`` and ``--early_stop``."""
    parser = argparse.ArgumentParser(
        prog="run_hyper_coldmeta.py",
        allow_abbrev=False,
        description=(
            "Tune a recbole_coldmeta or RecBole model with RecBole's HyperTuning on one shared "
            "cold-start split. Any other config key is given as --key=value (e.g. --epochs=5) "
            "and applies to every trial."
        ),
    )
    parser.add_argument("--model", "-m", default=None, help="model name, e.g. MeLU, CCML")
    parser.add_argument("--dataset", "-d", default=None, help="dataset name (default: ml-100k)")
    parser.add_argument(
        "--config_files", default=None, help="config files, separated by spaces or commas"
    )
    parser.add_argument(
        "--params_file", default=None, help="search space (default: properties/hyper/<model>.hyper)"
    )
    parser.add_argument(
        "--output_file", default=None, help="result text (default: hyper_<model>.result)"
    )
    parser.add_argument("--tool", default="Hyperopt", help="Hyperopt or Ray")
    parser.add_argument(
        "--ray_address", default=None, help="with --tool=Ray: a running cluster (auto, HOST:PORT)"
    )
    parser.add_argument("--algo", default="exhaustive", help="exhaustive, random or bayes")
    parser.add_argument(
        "--max_evals", type=int, default=None, help="most trials (default: grid size or 100)"
    )
    parser.add_argument(
        "--early_stop",
        type=int,
        default=10,
        help="stop after this many trials without a better validation score",
    )
    return parser


def main(argv=None):
    """Tune one model; return the process exit code (0 on success, 2 on a user error, 130/143
    when interrupted by SIGINT/SIGTERM)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args, overrides = build_parser().parse_known_args(argv)
    config_files = args.config_files.replace(",", " ").split() if args.config_files else None
    try:
        with user_facing_streams():  # logs to stdout: an error line is alone on stderr
            result = run_hyper(
                model=args.model,
                dataset=args.dataset,
                config_file_list=config_files,
                params_file=args.params_file,
                output_file=args.output_file,
                tool=args.tool,
                algo=args.algo,
                max_evals=args.max_evals,
                early_stop=args.early_stop,
                cmd_args=overrides,
                ray_address=args.ray_address,
            )
    except ColdMetaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(
            "interrupted; tuning keeps no partial result: run the same command again",
            file=sys.stderr,
            flush=True,
        )
        return interrupt_exit_code(interrupt)
    direction = "higher" if result["valid_score_bigger"] else "lower"
    print(
        f"best params (trial {result['best_trial']} of {len(result['trials'])}, selected on "
        f"valid {result['valid_metric']}, {direction} is better): {result['best_params']}\n"
        f"valid result: {result['best_valid_result']}\n"
        f"test result: {result['test_result']}\n"
        f"tuning took {result['seconds']:.0f} s; outputs: {result['output_file']}, "
        f"{result['trials_file']}, {result['plot_file']}"
    )
    summary = {key: result[key] for key in ("best_params", "best_valid_result", "test_result")}
    print(json.dumps(summary), flush=True)
    return 0
