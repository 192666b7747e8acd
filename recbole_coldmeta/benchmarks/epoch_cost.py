"""Cost of one meta-epoch per model at its defaults (e.g. CCML against MeLU), with peak memory.

Usage::

    python -m recbole_coldmeta.benchmarks.epoch_cost [--models MeLU CCML] [--dataset=ml-1m]
        [--epochs=3] [--threads=1] [--output=results/epoch_cost.json] [--key=value ...]

Each model runs in its own subprocess (so ``ru_maxrss`` is its own): the dataset is loaded and
split as in a normal run, the model is built at its defaults, and RecBole's own
``Trainer._train_epoch`` runs ``--epochs`` times on the model's training loader (task batches
for meta-learners, data loading included). The reported seconds per epoch is the median over the
epochs after the first (the first, which builds caches, is reported apart). Any further
``--key=value`` is a config override for every model. A markdown table goes to stdout, every
number to the JSON file.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from recbole_coldmeta.utils.atomic import atomic_write_text

MODULE = "recbole_coldmeta.benchmarks.epoch_cost"


def time_epochs(model_name, dataset, epochs, overrides):
    """Train ``epochs`` epochs of ``model_name``; return its timings and peak memory.

    ``overrides`` are ``--key=value`` strings, read as on the command line.
    """
    from recbole_coldmeta.data import create_dataset, data_preparation
    from recbole_coldmeta.quick_start.quick_start import build_config, build_model_and_trainer

    config_dict = {"state": "WARNING", "show_progress": False}
    config = build_config(model_name, dataset, config_dict=config_dict, cmd_args=overrides)
    train_data, _, _ = data_preparation(config, create_dataset(config))
    model, trainer = build_model_and_trainer(config, train_data.dataset)
    model.train()
    seconds = []
    for epoch in range(epochs):
        start = time.perf_counter()
        trainer._train_epoch(train_data, epoch, show_progress=False)
        seconds.append(time.perf_counter() - start)
    steady = seconds[1:] or seconds
    return {
        "model": model_name,
        "dataset": dataset,
        "epochs": epochs,
        "epoch_seconds": [round(s, 3) for s in seconds],
        "seconds_per_epoch": round(statistics.median(steady), 3),
        "batches_per_epoch": len(train_data),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def parse_args(argv):
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["MeLU", "CCML"])
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--output", default="results/epoch_cost.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options, overrides = parser.parse_known_args(argv)
    from recbole_coldmeta.config.configurator import parse_cmd_overrides

    parse_cmd_overrides(overrides)  # a malformed override fails here, before any run
    options.overrides = overrides
    if options.epochs < 1:
        parser.error("--epochs must be >= 1")
    return options


def report(results):
    """Markdown table; each model's epoch cost relative to the first model's."""
    base = results[0]["seconds_per_epoch"]
    lines = [
        "| model | s / epoch | first epoch s | x first model | batches | peak RSS MiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['model']} | {r['seconds_per_epoch']:.2f} | {r['epoch_seconds'][0]:.2f} | "
            f"{r['seconds_per_epoch'] / base:.2f} | {r['batches_per_epoch']} | "
            f"{r['peak_rss_mib']:.0f} |"
        )
    busiest = max(r["load_average_1min"] for r in results)
    if busiest > (os.cpu_count() or 1):
        lines.append(
            f"\nWARNING: 1-minute load average {busiest:.1f} on {os.cpu_count()} cores: the "
            f"machine was busy and the times are inflated."
        )
    return "\n".join(lines)


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(options.threads)
    if options.child:
        result = time_epochs(options.child, options.dataset, options.epochs, options.overrides)
        print(json.dumps(result))
        return result
    results = []
    for model in options.models:
        command = [sys.executable, "-m", MODULE, f"--child={model}"] + [
            f"--dataset={options.dataset}",
            f"--epochs={options.epochs}",
            f"--threads={options.threads}",
        ]
        command += options.overrides
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"{model}: the timing run failed (exit code {done.returncode}).")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    text = report(results)
    print(text)
    os.makedirs(os.path.dirname(options.output) or ".", exist_ok=True)
    atomic_write_text(options.output, json.dumps({"results": results, "table": text}, indent=2))
    return results


if __name__ == "__main__":
    main()
