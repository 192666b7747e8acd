"""Command line of the speed benchmark: ``python -m recbole_coldmeta.benchmarks.speed``.

Without ``--variant`` (the parent): runs the equal-loss check and every variant, each in its own
subprocess, then prints the markdown report and writes the JSON file. With ``--variant`` (a
child, started by the parent): runs that one variant, or ``check``, and writes its JSON to
``--result_file``.
"""

import argparse
import json
from pathlib import Path

import torch

from recbole_coldmeta.benchmarks import speed
from recbole_coldmeta.benchmarks.speed.data import resolve_data_source
from recbole_coldmeta.benchmarks.speed.harness import (
    META_VARIANTS,
    MODULE,
    Order,
    Variant,
    child_main,
    run_child,
)
from recbole_coldmeta.benchmarks.speed.report import build_report, markdown_report
from recbole_coldmeta.utils.atomic import atomic_write_text


def _parse_bool(text):
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def parse_args(argv=None):
    """Command-line options (``--key=value``)."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}", description=speed.__doc__.split("\n")[0]
    )
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--data_path", default="dataset/")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--task_batch_size", type=int, default=32)
    parser.add_argument("--local_steps", type=int, default=1)
    parser.add_argument(
        "--first_order",
        type=_parse_bool,
        default=None,
        help="True: first order only; False: second order only; default: both",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--max_batches", type=int, default=None, help="per epoch (quick runs)")
    parser.add_argument("--output", default="results/speed.json")
    parser.add_argument("--variant", choices=[v.value for v in Variant] + ["check"])
    parser.add_argument("--order", choices=[o.value for o in Order])
    parser.add_argument("--result_file", help="where a --variant run writes its JSON")
    return parser.parse_args(argv)


def main(argv=None):
    """Run the check and every variant, each in its own process; print and save the report."""
    options = parse_args(argv)
    if options.variant is not None:
        child_main(options)
        return None
    torch.set_num_threads(options.threads)
    source = resolve_data_source(options.dataset, options.data_path)
    options.dataset = source.dataset
    if options.first_order is None:
        orders = [Order.SECOND, Order.FIRST]
    else:
        orders = [Order.FIRST if options.first_order else Order.SECOND]
    check = run_child(options, "check")
    results = []
    for order in orders:
        for variant, variant_orders in META_VARIANTS.items():
            if order in variant_orders:
                results.append(run_child(options, variant.value, order))
    results.append(run_child(options, Variant.PLAIN.value))
    report = build_report(options, source, orders, check, results)
    table = markdown_report(report)
    print(table)
    output = Path(options.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    report["markdown"] = table
    atomic_write_text(output, json.dumps(report, indent=2) + "\n")
    print(f"\nWritten to {output}")
    return report
