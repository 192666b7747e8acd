"""The speed benchmark's harness: the variants, timed epochs, the equal-loss check, subprocesses.

Each variant trains MeLU from the same seeded weights on the same task batches (data loading
inside the timed loop), one Adam step per batch (see :mod:`recbole_coldmeta.benchmarks.speed`).
``ours`` is the package's path; ``per_task`` and ``deep_copy`` are the naive loops of
:mod:`~recbole_coldmeta.benchmarks.speed.reference_loops`; ``plain`` is supervised training of
the same network over the same rows.
"""

import gc
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from enum import Enum

import torch
import torch.nn.functional as F

from recbole_coldmeta.benchmarks.speed.data import (
    build_model,
    load_data,
    plain_rows,
    resolve_data_source,
)
from recbole_coldmeta.benchmarks.speed.reference_loops import (
    deep_copy_step,
    per_task_step,
    rate_rows,
)
from recbole_coldmeta.utils.atomic import atomic_write_text

#: The benchmark, as run with ``python -m`` (the parent re-invokes it for each variant).
MODULE = "recbole_coldmeta.benchmarks.speed"

#: Absolute tolerance (relative for values above 1) of the equal-loss check.
LOSS_TOLERANCE = 1e-4


class Order(Enum):
    """Order of the meta-gradient."""

    SECOND = "second"
    FIRST = "first"


class Variant(Enum):
    """What is timed (see :mod:`recbole_coldmeta.benchmarks.speed`)."""

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


def ours_step(model, batch):
    """The package's meta-training step: batched adaptation inside ``calculate_loss``."""
    loss = model.calculate_loss(batch)
    loss.backward()
    return loss.item()


#: The step function of each meta variant: ``step(model, batch) -> loss``, gradients in ``.grad``.
META_STEPS = {
    Variant.OURS: ours_step,
    Variant.PER_TASK: per_task_step,
    Variant.DEEP_COPY: deep_copy_step,
}


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


def child_main(options):
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
    atomic_write_text(options.result_file, json.dumps(result))


def run_child(options, variant, order=None):
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
