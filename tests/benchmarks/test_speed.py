"""The speed benchmark's variants on a tiny synthetic dataset: equal losses, well-formed results."""

import math

import pytest
import torch

from recbole_coldmeta.benchmarks.speed import data as speed_data
from recbole_coldmeta.benchmarks.speed import harness, reference_loops, report
from recbole_coldmeta.benchmarks.speed.harness import Order, Variant
from recbole_coldmeta.data.synthetic import write_synthetic_dataset

RUNS = [
    (Variant.OURS, Order.SECOND),
    (Variant.PER_TASK, Order.SECOND),
    (Variant.OURS, Order.FIRST),
    (Variant.PER_TASK, Order.FIRST),
    (Variant.DEEP_COPY, Order.FIRST),
    (Variant.PLAIN, None),
]


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: tiny tensors gain nothing from more, and on a busy 2-core machine a
    second thread makes every op wait for a free core (seconds instead of milliseconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def data(tmp_path):
    data_path = write_synthetic_dataset(tmp_path / "data", name="tiny")
    source = speed_data.DataSource("tiny", data_path, "tiny synthetic")
    return speed_data.load_data(
        source, task_batch_size=8, local_steps=2, config_dict={"load_col": None}
    )


def test_meta_variants_agree_on_the_first_batch(data):
    report = harness.check_equal_losses(data)
    assert set(report) == {"second", "first"}
    assert set(report["second"]["query_loss"]) == {"ours", "per_task"}
    assert set(report["first"]["query_loss"]) == {"ours", "per_task", "deep_copy"}
    for entry in report.values():
        assert entry["max_loss_difference"] <= harness.LOSS_TOLERANCE
        assert entry["max_grad_relative_difference"] <= harness.LOSS_TOLERANCE
        assert all(math.isfinite(loss) and loss > 0 for loss in entry["query_loss"].values())


def test_plain_rows_are_every_row_of_every_task(data):
    users, items, labels = speed_data.plain_rows(data.train_data)
    assert len(users) == len(items) == len(labels) == int(data.train_data.task_counts.sum())
    assert set(users.tolist()) == set(data.train_data.task_users.tolist())


def test_variant_results_are_well_formed(data):
    results = [harness.run_variant(data, variant, order, max_batches=2) for variant, order in RUNS]
    for result, (variant, order) in zip(results, RUNS):
        assert result["variant"] == variant.value
        assert result["order"] == (order.value if order else None)
        assert result["batches"] == 2
        assert result["tasks"] > 0 and result["rows"] > result["tasks"]
        assert len(result["epoch_seconds"]) == 1 and result["seconds"] > 0
        assert result["tasks_per_second"] > 0 and result["rows_per_second"] > 0
        assert 0 <= result["load_seconds"] <= result["seconds"]
        assert math.isfinite(result["mean_loss"])
        assert result["peak_rss_mib"] >= result["start_rss_mib"] > 0
        assert result["setup_peak_rss_mib"] > 0
    ratios = report.compute_ratios(results)
    assert ratios["second"]["faster_naive_variant"] == "per_task"
    assert ratios["first"]["faster_naive_variant"] in ("per_task", "deep_copy")
    for entry in ratios.values():
        assert entry["ours_over_faster_naive"] > 0 and entry["meta_epoch_over_plain_epoch"] > 0


def test_deep_copy_is_first_order_only(data):
    with pytest.raises(ValueError, match="cannot compute"):
        harness.run_variant(data, Variant.DEEP_COPY, Order.SECOND, max_batches=1)


def test_deep_copy_leaves_the_meta_parameters_untouched_until_the_step(data):
    model = speed_data.build_model(data, first_order=True)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    reference_loops.deep_copy_step(model, next(iter(data.train_data)))
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
        assert p.grad is not None, name


def test_per_task_second_order_differs_from_first_order(data):
    batch = next(iter(data.train_data))
    grads = []
    for first_order in (False, True):
        model = speed_data.build_model(data, first_order)
        reference_loops.per_task_step(model, batch)
        grads.append(model.decision[0].weight.grad)
    assert not torch.allclose(grads[0], grads[1])
