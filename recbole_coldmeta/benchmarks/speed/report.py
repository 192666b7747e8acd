"""The speed benchmark's report: environment, target ratios and the markdown table."""

import os
import platform
import sys

import torch

from recbole_coldmeta.benchmarks.speed.harness import META_VARIANTS, MODULE, Order, Variant

#: The project's targets: ours at least this many times the faster naive variant ...
SPEEDUP_TARGET = 4.0
#: ... and a meta-epoch at most this many times a plain epoch.
META_OVER_PLAIN_TARGET = 2.5

#: What the table's columns mean, in every report.
NOTES = [
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


def build_report(options, source, orders, check, results):
    """Everything the JSON file holds (but the markdown): environment, options, results, ratios.

    Args:
        options: the parent's command-line options.
        source: the :class:`~recbole_coldmeta.benchmarks.speed.data.DataSource` used.
        orders: the :class:`~recbole_coldmeta.benchmarks.speed.harness.Order` s timed.
        check: the ``check`` child's result.
        results: every variant child's result, in table order.
    """
    notes = list(NOTES)
    busiest = max(max(r["load_average_1min"]) for r in results)
    if busiest > (os.cpu_count() or 1):
        notes.append(
            f"WARNING: the machine was busy (1-minute load average up to {busiest:.1f} on "
            f"{os.cpu_count()} cores): wall times are inflated, most of all with --threads > 1, "
            f"where large (batched) ops wait for a free core at every OpenMP barrier. Prefer the "
            f"CPU-time ratios, or --threads=1, or an idle machine."
        )
    return {
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
