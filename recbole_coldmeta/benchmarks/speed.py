"""Speed of MeLU meta-training: our batched inner loop against the patterns it replaces.

Usage::

    python -m recbole_coldmeta.benchmarks.speed [--dataset=ml-1m] [--epochs=1]
        [--task_batch_size=32] [--local_steps=1] [--first_order=False]
        [--output=results/speed.json]

Four variants train the same MeLU network, from the same initial weights, on the same task
batches of :class:`~recbole_coldmeta.data.dataloader.MetaTaskDataLoader` (data loading is inside
the timed loop), one Adam step per batch:

- ``ours``: ``model.calculate_loss(batch)``, the package's path (all ``T`` tasks adapt at once
  through :mod:`recbole_coldmeta.meta.inner_loop`, ``vmap`` over ``functional_call``).
- ``per_task``: the same math with a Python loop over tasks, each with its own parameter dict,
  ``functional_call`` and ``torch.autograd.grad`` (``create_graph`` for second order).
- ``deep_copy``: the pattern of MeLU's and MML's original code: per task, ``copy.deepcopy`` of
  the model, a local ``torch.optim.SGD`` on the adapted layers for ``local_steps`` steps, then the
  adapted copy's query loss. First-order by construction (FOMAML): the copy's gradients are added
  into the meta-model's ``.grad``.
- ``plain``: ordinary supervised MSE training of the same network, no adaptation, over the same
  rows (every support and query row of the same tasks), in mini-batches as large as the average
  task batch.

Each variant runs in its own subprocess (re-invoking this module with ``--variant``) so that its
peak resident memory (``ru_maxrss``) is its own, with ``torch.set_num_threads(2)`` by default
(``--threads``; the CI machine has 2 cores), and takes one untimed warm-up step first. Before
timing, one more subprocess checks that the three meta variants compute the same query loss and
meta-gradient on the first batch. Results: a markdown table on stdout and a JSON file with every
number and the environment.
"""

import argparse
import copy
import gc
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from enum import Enum
from logging import getLogger
from pathlib import Path

import torch
import torch.nn.functional as F
from recbole.utils import init_seed
from torch.func import functional_call

from recbole_coldmeta.data import create_dataset
from recbole_coldmeta.data.converters import default_raw_root, ensure_converted
from recbole_coldmeta.data.synthetic import write_synthetic_dataset
from recbole_coldmeta.data.utils import get_dataloader
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.utils import DataError, get_model

logger = getLogger(__name__)

#: This module, as run with ``python -m``.
MODULE = "recbole_coldmeta.benchmarks.speed"

#: Name of the synthetic stand-in used when the raw ML-1M files are missing.
SYNTHETIC_DATASET = "ml-1m-synthetic"

#: ML-1M's size, for the synthetic stand-in: users, items, ratings per user (MeLU's filter).
ML1M_SHAPE = {"n_users": 6040, "n_items": 3706, "inters_per_user": (13, 100)}

#: MeLU's user-cold-start protocol on ML-1M: the states of the converted ``melu_state`` field.
MELU_STATE_SPLIT = {
    "user_split": "field",
    "split_field": "melu_state",
    "train_states": ["meta_training"],
    "test_state": "user_cold_testing",
}

#: The project's targets: ours at least this many times the faster naive variant ...
SPEEDUP_TARGET = 4.0
#: ... and a meta-epoch at most this many times a plain epoch.
META_OVER_PLAIN_TARGET = 2.5

#: Absolute tolerance (relative for values above 1) of the equal-loss check.
LOSS_TOLERANCE = 1e-4


class Order(Enum):
    """Order of the meta-gradient."""

    SECOND = "second"
    FIRST = "first"


class Variant(Enum):
    """What is timed (see the module docstring)."""

    OURS = "ours"
    PER_TASK = "per_task"
    DEEP_COPY = "deep_copy"
    PLAIN = "plain"


#: The meta-learning variants, in table order, and the orders each can compute.
META_VARIANTS = {
    Variant.OURS: (Order.SECOND, Order.FIRST),
    Variant.PER_TASK: (Order.SECOND, Order.FIRST),
    Variant.DEEP_COPY: (Order.FIRST,),
}


@dataclass
class DataSource:
    """Which atomic files the benchmark reads.

    Attributes:
        dataset: RecBole dataset name.
        data_path: RecBole ``data_path`` (the folder holding ``<dataset>/``).
        description: one line for the report: real or synthetic, and the split.
    """

    dataset: str
    data_path: str
    description: str


@dataclass
class BenchmarkData:
    """Everything a variant needs, loaded once per process.

    Attributes:
        config: the run's Config (MeLU on the benchmark's dataset).
        dataset: the meta-train part of the cold-start split (RecBole's train split).
        train_data: the task dataloader over ``dataset``.
        setup_seconds: time to load and split the data.
    """

    config: object
    dataset: object
    train_data: object
    setup_seconds: float


def resolve_data_source(dataset, data_path):
    """Make sure the atomic files of ``dataset`` exist under ``data_path`` and say which they are.

    ``ml-1m`` is converted from the raw files (:func:`ensure_converted`: ``$COLDMETA_RAW_DATA`` or
    ``../shared/datasets``); when those are missing, a synthetic dataset of ML-1M's size
    (:data:`SYNTHETIC_DATASET`) is written instead. Any other name must already be in
    ``data_path`` (or be RecBole's bundled ``ml-100k``).

    Returns:
        DataSource: the dataset actually used.
    """
    if dataset == "ml-1m":
        try:
            ensure_converted("ml-1m", data_path)
        except DataError as error:
            logger.warning(f"ML-1M raw data unusable ({error}); using synthetic data instead.")
            return resolve_data_source(SYNTHETIC_DATASET, data_path)
        return DataSource(
            "ml-1m",
            str(data_path),
            f"ML-1M converted from {default_raw_root()} (MeLU states: train on meta_training, "
            f"test on user_cold_testing)",
        )
    if dataset == SYNTHETIC_DATASET:
        if not (Path(data_path) / dataset / f"{dataset}.inter").is_file():
            write_synthetic_dataset(data_path, name=dataset, **ML1M_SHAPE)
        return DataSource(
            dataset,
            str(data_path),
            "synthetic, ML-1M-sized ({n_users} users, {n_items} items, 13-100 ratings each; "
            "random user split)".format(**ML1M_SHAPE),
        )
    return DataSource(dataset, str(data_path), f"{dataset} (random user split)")


def benchmark_config_dict(source, task_batch_size, local_steps):
    """The config overrides of a benchmark run on ``source``.

    On ML-1M the MeLU state split is spelled out (:data:`MELU_STATE_SPLIT`, the same values as
    ``properties/dataset/ml-1m.yaml``), so the benchmark does not change if that file does.
    """
    config_dict = {
        "data_path": source.data_path,
        "task_batch_size": task_batch_size,
        "local_steps": local_steps,
        "show_progress": False,
        "state": "WARNING",
    }
    if source.dataset == "ml-1m":
        config_dict.update(MELU_STATE_SPLIT)
    elif source.dataset == SYNTHETIC_DATASET:
        config_dict["load_col"] = None
    return config_dict


def load_data(source, task_batch_size, local_steps, config_dict=None):
    """Load ``source`` with MeLU's config, split it and build the task dataloader.

    Args:
        source: a :class:`DataSource`.
        task_batch_size: ``T``.
        local_steps: inner steps.
        config_dict: extra overrides (tests).

    Returns:
        BenchmarkData: the training part only; valid/test data are not used here.
    """
    start = time.perf_counter()
    overrides = benchmark_config_dict(source, task_batch_size, local_steps)
    config = build_config("MeLU", source.dataset, config_dict={**overrides, **(config_dict or {})})
    dataset = create_dataset(config)
    train_dataset = dataset.build()[0]
    train_data = get_dataloader(config, "train")(
        config, train_dataset, None, shuffle=config["shuffle"]
    )
    return BenchmarkData(config, train_dataset, train_data, time.perf_counter() - start)


def build_model(data, first_order):
    """MeLU on ``data`` with seeded initial weights: every call gives the same weights.

    ``first_order`` is written into ``data.config`` (MeLU reads it in ``__init__``), so that one
    loaded dataset serves both orders.
    """
    config = data.config
    config["first_order"] = first_order
    init_seed(config["seed"], config["reproducibility"])
    return get_model("MeLU")(config, data.dataset).to(config["device"])


def rate_rows(model, params, users, items):
    """Predicted ratings of rows ``[R]`` without vmap.

    Args:
        model: a MeLU.
        params: decision-layer parameters ``{name: tensor}`` (unbatched) for
            ``functional_call``, or ``None`` for the module's own.
        users: ``[R]`` user ids, or ``[1]`` for one user's rows.
        items: ``[R]`` item ids.

    Returns:
        ``[R]`` predicted ratings.
    """
    users = users.expand(len(items))  # [1 or R] -> [R]
    x = model.features(users.unsqueeze(0), items.unsqueeze(0)).squeeze(0)  # [1, R, D] -> [R, D]
    if params is None:
        out = model.decision(x)
    else:
        out = functional_call(model.decision, params, (x,), strict=False)
    return out.squeeze(-1) + model.global_mean  # [R, 1] -> [R]


def _task_rows(batch, t, prefix):
    """Task ``t``'s real ``prefix`` (support/query) rows: ``items [R]`` and ``labels [R]``."""
    mask = batch[f"{prefix}_mask"][t]
    return batch[f"{prefix}_item"][t][mask], batch[f"{prefix}_label"][t][mask]


def ours_step(model, batch):
    """The package's meta-training step: batched adaptation inside ``calculate_loss``."""
    loss = model.calculate_loss(batch)
    loss.backward()
    return loss.item()


def per_task_step(model, batch):
    """The same meta-loss as :func:`ours_step`, adapting one task at a time in a Python loop."""
    users = batch[model.USER_ID]
    own = dict(model.decision.named_parameters())
    start = {name: own[name] for name in model.adapted_names}
    losses = []
    for t in range(len(users)):
        user = users[t : t + 1]
        items, labels = _task_rows(batch, t, "support")
        params = start
        for _ in range(model.local_steps):
            support_loss = F.mse_loss(rate_rows(model, params, user, items), labels)
            grads = torch.autograd.grad(
                support_loss, list(params.values()), create_graph=not model.first_order
            )
            params = {name: p - model.local_lr * g for (name, p), g in zip(params.items(), grads)}
        items, labels = _task_rows(batch, t, "query")
        losses.append(F.mse_loss(rate_rows(model, params, user, items), labels))
    loss = torch.stack(losses).mean()
    loss.backward()
    return loss.item()


def deep_copy_step(model, batch):
    """The original MeLU/MML pattern: a deep copy and a local SGD per task (first order).

    Buffers (feature tables, evaluation support sets) are shared with the copies, not copied:
    only parameters are, as in the original code whose models hold no such buffers.
    """
    users = batch[model.USER_ID]
    num_tasks = len(users)
    shared_buffers = {id(buffer): buffer for buffer in model.buffers()}
    total = 0.0
    for t in range(num_tasks):
        user = users[t : t + 1]
        local = copy.deepcopy(model, memo=dict(shared_buffers))
        local.zero_grad(set_to_none=True)
        own = dict(local.decision.named_parameters())
        local_optimizer = torch.optim.SGD(
            [own[name] for name in model.adapted_names], lr=model.local_lr
        )
        items, labels = _task_rows(batch, t, "support")
        for _ in range(model.local_steps):
            local_optimizer.zero_grad()
            F.mse_loss(rate_rows(local, None, user, items), labels).backward()
            local_optimizer.step()
        local.zero_grad(set_to_none=True)
        items, labels = _task_rows(batch, t, "query")
        query_loss = F.mse_loss(rate_rows(local, None, user, items), labels)
        (query_loss / num_tasks).backward()
        for meta_param, local_param in zip(model.parameters(), local.parameters()):
            if local_param.grad is None:
                continue
            if meta_param.grad is None:
                meta_param.grad = local_param.grad
            else:
                meta_param.grad += local_param.grad
        total += query_loss.item()
    return total / num_tasks


#: The step function of each meta variant: ``step(model, batch) -> loss``, gradients in ``.grad``.
META_STEPS = {
    Variant.OURS: ours_step,
    Variant.PER_TASK: per_task_step,
    Variant.DEEP_COPY: deep_copy_step,
}


def plain_rows(train_data):
    """Every support and query row of every task of ``train_data``: ``users, items, labels [R]``."""
    counts = train_data.task_counts
    starts = torch.repeat_interleave(train_data.task_starts, counts)  # [R]
    offsets = torch.arange(int(counts.sum())) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    rows = train_data.task_rows[starts + offsets]  # [R]
    users = train_data.dataset.inter_feat[train_data.uid_field][rows]
    return users, train_data.items[rows], train_data.labels[rows]


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _reset_peak_rss():
    """Reset this process's peak RSS to its current RSS (Linux ``clear_refs``); False if not."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _take(iterable, count):
    """The first ``count`` items of ``iterable`` (all of them when ``count`` is None)."""
    for index, item in enumerate(iterable):
        if count is not None and index >= count:
            return
        yield item


def _timed_epoch(batches, train_step):
    """Run ``train_step`` on every batch, timing the epoch and the waits for batches.

    Returns:
        dict: ``seconds`` (wall), ``cpu_seconds`` (this process, all threads),
        ``load_seconds``, ``batches``, ``tasks``, ``rows``, ``loss_sum``.
    """
    totals = {"load_seconds": 0.0, "batches": 0, "tasks": 0.0, "rows": 0, "loss_sum": 0.0}
    start, cpu_start = time.perf_counter(), time.process_time()
    iterator = iter(batches)
    while True:
        fetch = time.perf_counter()
        batch = next(iterator, None)
        totals["load_seconds"] += time.perf_counter() - fetch
        if batch is None:
            break
        loss, tasks, rows = train_step(batch)
        totals["batches"] += 1
        totals["tasks"] += tasks
        totals["rows"] += rows
        totals["loss_sum"] += loss
    totals["seconds"] = time.perf_counter() - start
    totals["cpu_seconds"] = time.process_time() - cpu_start
    return totals


def _meta_epoch(data, model, optimizer, variant):
    """Batches and training step of a meta variant: the task dataloader, one Adam step each."""
    step = META_STEPS[variant]
    device = data.config["device"]

    def train_step(batch):
        batch = batch.to(device)
        optimizer.zero_grad(set_to_none=True)
        loss = step(model, batch)
        optimizer.step()
        rows = int(batch["support_mask"].sum() + batch["query_mask"].sum())
        return loss, len(batch[model.USER_ID]), rows

    return lambda: data.train_data, train_step, None


def _plain_epoch(data, model, optimizer):
    """Batches and training step of the plain variant: shuffled rows, supervised MSE.

    A batch holds as many rows as a task batch on average; ``tasks`` counts task equivalents
    (rows times tasks per row), so that tasks/second compare with the meta variants.
    """
    users, items, labels = plain_rows(data.train_data)
    num_tasks = len(data.train_data.task_users)
    tasks_per_row = num_tasks / len(labels)
    batch_rows = max(1, round(len(labels) / math.ceil(num_tasks / data.config["task_batch_size"])))
    generator = torch.Generator().manual_seed(int(data.config["seed"]))
    device = data.config["device"]

    def batches():
        order = torch.randperm(len(labels), generator=generator)
        for begin in range(0, len(order), batch_rows):
            index = order[begin : begin + batch_rows]
            yield users[index].to(device), items[index].to(device), labels[index].to(device)

    def train_step(batch):
        batch_users, batch_items, batch_labels = batch
        optimizer.zero_grad(set_to_none=True)
        loss = F.mse_loss(rate_rows(model, None, batch_users, batch_items), batch_labels)
        loss.backward()
        optimizer.step()
        return loss.item(), len(batch_labels) * tasks_per_row, len(batch_labels)

    return batches, train_step, batch_rows


def _trainer(data, variant, order):
    """A fresh model (seeded weights) and Adam, with the batches and training step of ``variant``.

    Returns:
        tuple: ``batches`` (a callable giving one epoch's batches), ``train_step`` (``batch ->
        (loss, tasks, rows)``) and the rows per batch (plain only, else ``None``).
    """
    model = build_model(data, first_order=order == Order.FIRST)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=data.config["learning_rate"])
    if variant == Variant.PLAIN:
        return _plain_epoch(data, model, optimizer)
    return _meta_epoch(data, model, optimizer, variant)


def run_variant(data, variant, order=None, epochs=1, max_batches=None):
    """Time ``variant`` for ``epochs`` epochs (of at most ``max_batches`` batches) on ``data``.

    Args:
        data: :class:`BenchmarkData`.
        variant: a :class:`Variant`.
        order: an :class:`Order` for meta variants (``deep_copy`` is first-order only); ignored
            by ``plain``.
        epochs: epochs to time.
        max_batches: stop each epoch after this many batches (tests); ``None``: whole epochs.

    Returns:
        dict: ``variant``, ``order``; per epoch ``batches``, ``tasks``, ``rows``,
        ``rows_per_batch`` (plain only); over all epochs ``epoch_seconds`` (list), ``seconds``,
        ``load_seconds``, ``cpu_seconds``, ``tasks_per_second``, ``rows_per_second``,
        ``mean_loss``; ``setup_seconds``, ``warmup_seconds`` (one untimed step before the
        epochs), ``setup_peak_rss_mib`` (peak while loading data), ``start_rss_mib`` (RSS when
        training starts), ``peak_rss_mib`` (peak while training, from ``ru_maxrss`` after
        resetting it when training starts; ``peak_rss_is_training_only`` says whether the reset
        worked, else the peak includes loading). Run each variant in its own process.
    """
    setup_peak = _peak_rss_mib()
    peak_was_reset = _reset_peak_rss()
    start_rss = _peak_rss_mib()
    if variant == Variant.PLAIN:
        order = None
    elif order not in META_VARIANTS[variant]:
        raise ValueError(f"{variant.value} cannot compute {order} order meta-gradients.")
    # One untimed step of a throwaway model first: one-time costs (lazy imports such as
    # torch._dynamo on the first optimizer step, first calls of vmap) are not per-epoch costs.
    warmup_start = time.perf_counter()
    warmup_batches, warmup_step, _ = _trainer(data, variant, order)
    warmup_step(next(iter(warmup_batches())))
    warmup_seconds = time.perf_counter() - warmup_start
    batches, train_step, batch_rows = _trainer(data, variant, order)
    epochs_done = [_timed_epoch(_take(batches(), max_batches), train_step) for _ in range(epochs)]
    seconds = sum(e["seconds"] for e in epochs_done)
    tasks = sum(e["tasks"] for e in epochs_done)
    rows = sum(e["rows"] for e in epochs_done)
    num_batches = sum(e["batches"] for e in epochs_done)
    return {
        "variant": variant.value,
        "order": order.value if order else None,
        "batches": num_batches // epochs,
        "tasks": round(tasks / epochs, 1),
        "rows": rows // epochs,
        "rows_per_batch": batch_rows,
        "epoch_seconds": [round(e["seconds"], 4) for e in epochs_done],
        "seconds": round(seconds, 4),
        "cpu_seconds": round(sum(e["cpu_seconds"] for e in epochs_done), 4),
        "load_seconds": round(sum(e["load_seconds"] for e in epochs_done), 4),
        "tasks_per_second": round(tasks / seconds, 2),
        "rows_per_second": round(rows / seconds, 1),
        "mean_loss": round(sum(e["loss_sum"] for e in epochs_done) / num_batches, 6),
        "setup_seconds": round(data.setup_seconds, 3),
        "warmup_seconds": round(warmup_seconds, 3),
        "setup_peak_rss_mib": round(setup_peak, 1),
        "start_rss_mib": round(start_rss, 1),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
        "peak_rss_is_training_only": peak_was_reset,
    }


def _flat_grad(model):
    return torch.cat(
        [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
            for p in model.parameters()
        ]
    )


def check_equal_losses(data, tolerance=LOSS_TOLERANCE):
    """The meta variants agree on the first batch from the same initial weights.

    For each order, every variant that can compute it takes the query loss and meta-gradient of
    the first task batch; they must match ``ours``: losses within ``tolerance`` (relative above 1),
    gradients within ``tolerance`` in relative norm. ``deep_copy`` is compared at first order.

    Returns:
        dict: ``{order: {"query_loss": {variant: loss}, "max_loss_difference": ...,
        "max_grad_relative_difference": ...}}``.

    Raises:
        AssertionError: a variant disagrees with ``ours``.
    """
    batch = next(iter(data.train_data)).to(data.config["device"])
    reference_weights = None
    report = {}
    for order in Order:
        losses, grads = {}, {}
        for variant, orders in META_VARIANTS.items():
            if order not in orders:
                continue
            model = build_model(data, first_order=order == Order.FIRST)
            weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
            if reference_weights is None:
                reference_weights = weights
            assert torch.equal(weights, reference_weights), "initial weights differ"
            losses[variant.value] = META_STEPS[variant](model, batch)
            grads[variant.value] = _flat_grad(model)
        reference_loss = losses[Variant.OURS.value]
        reference_grad = grads[Variant.OURS.value]
        loss_gap = max(abs(loss - reference_loss) for loss in losses.values())
        grad_gap = max(
            float((grad - reference_grad).norm() / reference_grad.norm().clamp(min=1e-12))
            for grad in grads.values()
        )
        assert loss_gap <= tolerance * max(1.0, abs(reference_loss)), (
            f"{order.value}-order query losses differ: {losses}"
        )
        assert grad_gap <= tolerance, (
            f"{order.value}-order meta-gradients differ by {grad_gap:.2e} (relative norm)"
        )
        report[order.value] = {
            "query_loss": {name: round(loss, 7) for name, loss in losses.items()},
            "max_loss_difference": loss_gap,
            "max_grad_relative_difference": grad_gap,
        }
    return report


def _parse_bool(text):
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def parse_args(argv=None):
    """Command-line options (``--key=value``)."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
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


def _child_main(options):
    """One variant (or the equal-loss check) in this process; JSON to ``--result_file``."""
    torch.set_num_threads(options.threads)
    source = resolve_data_source(options.dataset, options.data_path)
    data = load_data(source, options.task_batch_size, options.local_steps)
    load_average_start = os.getloadavg()[0]
    if options.variant == "check":
        result = {"check": check_equal_losses(data)}
    else:
        order = Order(options.order) if options.order else None
        result = run_variant(
            data, Variant(options.variant), order, options.epochs, options.max_batches
        )
    result["load_average_1min"] = [load_average_start, os.getloadavg()[0]]
    with open(options.result_file, "w", encoding="utf-8") as f:
        json.dump(result, f)


def _run_child(options, variant, order=None):
    """Run one variant in a fresh interpreter and return its JSON result."""
    with tempfile.TemporaryDirectory() as folder:
        result_file = os.path.join(folder, "result.json")
        command = [
            sys.executable,
            "-m",
            MODULE,
            f"--dataset={options.dataset}",
            f"--data_path={options.data_path}",
            f"--epochs={options.epochs}",
            f"--task_batch_size={options.task_batch_size}",
            f"--local_steps={options.local_steps}",
            f"--threads={options.threads}",
            f"--variant={variant}",
            f"--result_file={result_file}",
        ]
        if order is not None:
            command.append(f"--order={order.value}")
        if options.max_batches is not None:
            command.append(f"--max_batches={options.max_batches}")
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(
                f"{variant} {order.value if order else ''} failed:\n{completed.stderr[-4000:]}"
            )
        with open(result_file, encoding="utf-8") as f:
            return json.load(f)


def _cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment(options, source):
    """Versions, threads, CPU and data of this run, for the JSON file."""
    return {
        "command": " ".join(["python", "-m", MODULE, *sys.argv[1:]]),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": options.threads,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "data": source.description,
        "dataset": source.dataset,
    }


def _per_epoch(result, clock):
    return result[clock] / len(result["epoch_seconds"])


def compute_ratios(results):
    """The project's target ratios, per order, on wall time and on CPU time.

    ``ours_over_faster_naive``: the faster same-math variant's epoch time over ours (all meta
    variants train on the same tasks). ``meta_epoch_over_plain_epoch``: our epoch time over the
    plain epoch's. The targets are judged on wall time; the ``_cpu`` twins (process CPU time)
    are less sensitive to other processes sharing the machine.
    """
    by_key = {(r["variant"], r["order"]): r for r in results}
    plain = by_key.get((Variant.PLAIN.value, None))
    ratios = {}
    for order in Order:
        ours = by_key.get((Variant.OURS.value, order.value))
        if ours is None:
            continue
        same_math = [
            by_key[(variant.value, order.value)]
            for variant, orders in META_VARIANTS.items()
            if variant != Variant.OURS and (variant.value, order.value) in by_key
        ]
        entry = {}
        if same_math:
            fastest = min(same_math, key=lambda r: _per_epoch(r, "seconds"))
            entry["faster_naive_variant"] = fastest["variant"]
            for suffix, clock in (("", "seconds"), ("_cpu", "cpu_seconds")):
                entry["ours_over_faster_naive" + suffix] = round(
                    _per_epoch(fastest, clock) / _per_epoch(ours, clock), 2
                )
            entry["meets_speedup_target"] = entry["ours_over_faster_naive"] >= SPEEDUP_TARGET
        deep_copy = by_key.get((Variant.DEEP_COPY.value, Order.FIRST.value))
        if order == Order.SECOND and deep_copy is not None:
            entry["ours_over_deep_copy_first_order"] = round(
                _per_epoch(deep_copy, "seconds") / _per_epoch(ours, "seconds"), 2
            )
        if plain is not None:
            for suffix, clock in (("", "seconds"), ("_cpu", "cpu_seconds")):
                entry["meta_epoch_over_plain_epoch" + suffix] = round(
                    _per_epoch(ours, clock) / _per_epoch(plain, clock), 2
                )
            entry["meets_plain_target"] = (
                entry["meta_epoch_over_plain_epoch"] <= META_OVER_PLAIN_TARGET
            )
        ratios[order.value] = entry
    return ratios


def markdown_report(report):
    """The results as a markdown table and the target ratios as a list."""
    check = report["equal_loss_check"]
    lines = [
        f"Data: {report['environment']['data']}. torch {report['environment']['torch']}, "
        f"{report['environment']['threads']} threads (torch.set_num_threads), "
        f"{report['environment']['cpu_model']}. T={report['options']['task_batch_size']}, "
        f"local_steps={report['options']['local_steps']}.",
        "",
        "| variant | order | tasks/s | rows/s | epoch s | CPU s | data s | RSS start MiB "
        "| RSS peak MiB | load avg | query loss, batch 1 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in report["results"]:
        order = r["order"] or "-"
        loss = check.get(r["order"] or "", {}).get("query_loss", {}).get(r["variant"])
        epochs = len(r["epoch_seconds"])
        load = "/".join(f"{value:.1f}" for value in r.get("load_average_1min", []))
        lines.append(
            f"| {r['variant']}{' (FOMAML)' if r['variant'] == 'deep_copy' else ''} | {order} "
            f"| {r['tasks_per_second']:.1f} | {r['rows_per_second']:.0f} "
            f"| {r['seconds'] / epochs:.2f} | {r['cpu_seconds'] / epochs:.2f} "
            f"| {r['load_seconds'] / epochs:.2f} | {r['start_rss_mib']:.0f} "
            f"| {r['peak_rss_mib']:.0f} | {load} | {'-' if loss is None else f'{loss:.6f}'} |"
        )
    lines.append("")
    for order, entry in report["ratios"].items():
        parts = []
        if "ours_over_faster_naive" in entry:
            parts.append(
                f"ours / {entry['faster_naive_variant']} = {entry['ours_over_faster_naive']}x "
                f"(CPU time: {entry['ours_over_faster_naive_cpu']}x; target >= "
                f"{SPEEDUP_TARGET:g}x: {'met' if entry['meets_speedup_target'] else 'MISSED'})"
            )
        if "ours_over_deep_copy_first_order" in entry:
            parts.append(f"ours / deep_copy (FOMAML) = {entry['ours_over_deep_copy_first_order']}x")
        if "meta_epoch_over_plain_epoch" in entry:
            parts.append(
                f"meta-epoch / plain epoch = {entry['meta_epoch_over_plain_epoch']}x "
                f"(CPU time: {entry['meta_epoch_over_plain_epoch_cpu']}x; target <= "
                f"{META_OVER_PLAIN_TARGET:g}x: "
                f"{'met' if entry['meets_plain_target'] else 'MISSED'})"
            )
        lines.append(f"- {order} order: " + "; ".join(parts))
    for order, entry in check.items():
        lines.append(
            f"- equal-loss check ({order} order, batch 1): max |loss difference| "
            f"{entry['max_loss_difference']:.1e}, max relative meta-gradient difference "
            f"{entry['max_grad_relative_difference']:.1e}"
        )
    lines += [f"- note: {note}" for note in report["notes"]]
    return "\n".join(lines)


def main(argv=None):
    """Run the check and every variant, each in its own process; print and save the report."""
    options = parse_args(argv)
    if options.variant is not None:
        _child_main(options)
        return None
    torch.set_num_threads(options.threads)
    source = resolve_data_source(options.dataset, options.data_path)
    options.dataset = source.dataset
    if options.first_order is None:
        orders = [Order.SECOND, Order.FIRST]
    else:
        orders = [Order.FIRST if options.first_order else Order.SECOND]
    check = _run_child(options, "check")
    notes = [
        "deep_copy is first-order by construction (FOMAML: the copy's query-loss gradients are "
        "added into the meta-model's .grad); its loss is compared with the first-order variants.",
        "Each variant runs in its own process. 'RSS start' is the resident memory when training "
        "starts (the loaded dataset included); 'RSS peak' is ru_maxrss at the end, reset when "
        "training starts, so it is the training peak (loading peaks: setup_peak_rss_mib).",
        "Times include data loading (task collation, or row gathering for plain); 'data s' is "
        "the part spent waiting for batches; 'CPU s' is the process's CPU time (all threads).",
        "plain's tasks/s counts task equivalents (rows times tasks per row).",
        "'load avg' is the machine's 1-minute load average before/after each timed run; above "
        "the core count, other processes shared the CPU and wall times are inflated.",
    ]
    results = []
    for order in orders:
        for variant, variant_orders in META_VARIANTS.items():
            if order in variant_orders:
                results.append(_run_child(options, variant.value, order))
    results.append(_run_child(options, Variant.PLAIN.value))
    busiest = max(max(r["load_average_1min"]) for r in results)
    if busiest > (os.cpu_count() or 1):
        notes.append(
            f"WARNING: the machine was busy (1-minute load average up to {busiest:.1f} on "
            f"{os.cpu_count()} cores): wall times are inflated, most of all with --threads > 1, "
            f"where large (batched) ops wait for a free core at every OpenMP barrier. Prefer the "
            f"CPU-time ratios, or --threads=1, or an idle machine."
        )
    report = {
        "environment": environment(options, source),
        "options": {
            key: getattr(options, key)
            for key in ("epochs", "task_batch_size", "local_steps", "first_order", "max_batches")
        },
        "equal_loss_check": {
            order: entry for order, entry in check["check"].items() if Order(order) in orders
        },
        "results": results,
        "ratios": compute_ratios(results),
        "targets": {
            "ours_over_faster_naive_at_least": SPEEDUP_TARGET,
            "meta_epoch_over_plain_epoch_at_most": META_OVER_PLAIN_TARGET,
        },
        "notes": notes,
    }
    table = markdown_report(report)
    print(table)
    output = Path(options.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    report["markdown"] = table
    with open(output, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"\nWritten to {output}")
    return report


if __name__ == "__main__":
    main()
