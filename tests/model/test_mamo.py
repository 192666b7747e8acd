"""MAMO: the adapted scores depend on the support set, evaluation touches no parameter and no
memory, batched equals per-task, the memories are written as the rule says, the loss goes down,
the implicit and ids-only variants run, bad settings are clear errors."""

import copy

import pytest
import torch

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.model.cold_start_recommender.mamo import memory_write
from recbole_coldmeta.quick_start import build_config, run_coldmeta
from recbole_coldmeta.registry import get_model, get_trainer
from recbole_coldmeta.utils import ConfigError, properties_dir

IMPLICIT = {
    "meta_feedback": "implicit",
    "task_neg_sample_num": 2,
    "metrics": ["Recall", "NDCG"],
    "valid_metric": "NDCG@10",
}
IDS_ONLY = {"load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}}
MEMORIES = ("profile_memory", "bias_memory", "task_memory")


def _setup(tiny_config, **overrides):
    config = build_config("MAMO", "tiny", config_dict={**tiny_config, **overrides})
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model = get_model("MAMO")(config, train_data.dataset)
    return config, model, train_data, valid_data, test_data


def _with(batch, **fields):
    changed = copy.copy(batch)
    changed.interaction = {**batch.interaction, **fields}
    return changed


@pytest.mark.parametrize("overrides", [{}, IDS_ONLY], ids=["profile", "ids_only"])
def test_a_support_label_changes_the_scores_and_query_labels_do_not(tiny_config, overrides):
    _, model, _, _, test_data = _setup(tiny_config, **overrides)
    model.eval()
    batch = next(iter(test_data))[0]
    scores = model.predict(batch)
    labels = batch["support_label"].clone()
    labels[:, 0] = torch.where(labels[:, 0] > 3, 1.0, 5.0)  # every user's first support rating
    assert not torch.allclose(model.predict(_with(batch, support_label=labels)), scores)
    hidden = _with(batch, rating=torch.zeros_like(batch["rating"]))
    torch.testing.assert_close(model.predict(hidden), scores)  # query labels are never read


def test_without_user_features_the_memory_key_is_a_summary_of_the_support_rows(tiny_config):
    _, model, train_data, _, _ = _setup(tiny_config, **IDS_ONLY)
    assert model.user_embedder.output_size == 0
    batch = next(iter(train_data))
    users, items = batch["user_id"], batch["support_item"]
    labels, mask = batch["support_label"], batch["support_mask"]
    key = model.profile(users, (items, labels, mask))
    assert key.shape == (len(users), 2 * model.item_embedder.output_size)
    assert not torch.allclose(model.profile(users, (items, labels.flip(1), mask)), key)
    other_items = torch.roll(items, 1, dims=0)
    assert not torch.allclose(model.profile(users, (other_items, labels, mask)), key)
    query = _with(batch, query_label=torch.zeros_like(batch["query_label"]))
    assert torch.equal(model.profile(users, model._batch_rows(query, "support")), key)


def test_evaluation_leaves_parameters_and_memories_byte_identical(tiny_config):
    config, model, train_data, valid_data, test_data = _setup(tiny_config, epochs=1)
    initial = {name: getattr(model, name).clone() for name in MEMORIES}
    trainer = get_trainer(config["MODEL_TYPE"], "MAMO")(config, model)
    trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    for name in MEMORIES:  # training wrote every memory
        assert not torch.equal(getattr(model, name), initial[name]), name
    before = copy.deepcopy(model.state_dict())
    assert set(MEMORIES) <= set(before)  # the memories are saved with the model
    first = trainer.evaluate(test_data, load_best_model=False)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert trainer.evaluate(test_data, load_best_model=False) == first


@pytest.mark.parametrize("overrides", [{}, IDS_ONLY], ids=["profile", "ids_only"])
def test_a_batch_of_tasks_scores_as_each_task_alone(tiny_config, overrides):
    _, model, train_data, _, _ = _setup(tiny_config, **overrides)
    model.eval()
    batch = next(iter(train_data))
    support = (batch["support_item"], batch["support_label"], batch["support_mask"])
    assert len(set(batch["support_mask"].sum(dim=1).tolist())) > 1  # padding differs per task
    together = model.adapted_scores(batch["user_id"], support, batch["query_item"])
    for t in range(len(batch["user_id"])):
        size = int(batch["support_mask"][t].sum())
        alone = model.adapted_scores(
            batch["user_id"][t : t + 1],
            tuple(part[t : t + 1, :size] for part in support),
            batch["query_item"][t : t + 1],
        )
        torch.testing.assert_close(alone[0], together[t], atol=1e-5, rtol=0)


def test_adaptation_lowers_every_tasks_support_loss(tiny_config):
    _, model, train_data, _, _ = _setup(tiny_config)
    model.eval()
    batch = next(iter(train_data))
    users, support = batch["user_id"], model._batch_rows(batch, "support")
    profile, x = model.profile(users, support).detach(), model.item_embedder(support[0]).detach()
    mask = support[2].float()
    start, _ = model.start_params(profile, keep_graph=False)
    adapted, _, _ = model.adapt_task(users, support, keep_graph=False)
    after = model.task_loss(adapted, profile, x, support[1], mask)
    assert torch.all(after < model.task_loss(start, profile, x, support[1], mask))


def test_predict_scores_rows_in_their_order_and_full_sort_agrees(tiny_config):
    _, model, _, _, test_data = _setup(tiny_config)
    model.eval()
    rows = test_data.dataset.inter_feat[:40]
    test_data.support.add_to(rows)
    scores = model.predict(rows)
    perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.predict(rows[perm]), scores[perm])
    full = model.full_sort_predict(rows[:3]).view(3, -1)
    assert full.shape == (3, model.n_items)
    torch.testing.assert_close(full[torch.arange(3), rows["item_id"][:3]], scores[:3])


@pytest.mark.parametrize("first_order", [True, False])
def test_every_parameter_gets_a_meta_gradient(tiny_config, first_order):
    _, model, train_data, _, _ = _setup(tiny_config, first_order=first_order)
    model.calculate_loss(next(iter(train_data))).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_the_loss_decreases_on_a_tiny_problem(tiny_config):
    _, model, train_data, _, _ = _setup(tiny_config)
    batch = next(iter(train_data))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(40):
        loss = model.calculate_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_a_batch_write_equals_the_tasks_sequential_writes():
    generator = torch.Generator().manual_seed(0)
    memory = torch.randn(3, 4, 2, generator=generator)
    attention = torch.softmax(torch.randn(5, 3, generator=generator), dim=1)
    values = torch.randn(5, 4, 2, generator=generator)
    expected = memory.clone()
    for a, v in zip(attention, values):  # slot k <- (1 - r a_k) M_k + r a_k v
        expected = (1 - 0.3 * a).view(3, 1, 1) * expected + 0.3 * a.view(3, 1, 1) * v
    torch.testing.assert_close(memory_write(memory, attention, values, 0.3), expected)
    one_hot = torch.eye(3)[[2]]  # a task attending one slot leaves the others as they are
    written = memory_write(memory, one_hot, values[:1], 1.0)
    assert torch.equal(written[:2], memory[:2]) and torch.equal(written[2], values[0])


def test_the_memories_start_from_their_own_seeded_stream(tiny_config):
    memories = []
    for global_seed in range(2):
        _, model, _, _, _ = _setup(tiny_config)
        torch.manual_seed(global_seed)  # the global generator plays no part
        memories.append([getattr(model, name).clone() for name in MEMORIES])
    assert all(torch.equal(a, b) for a, b in zip(*memories))


def test_implicit_mamo_learns_positives_against_negatives_and_ranks(tiny_config):
    _, model, train_data, _, test_data = _setup(tiny_config, **IMPLICIT)
    batch = next(iter(train_data))
    assert "support_neg_item" in batch and model.calculate_loss(batch).isfinite()
    model.eval()
    assert model.full_sort_predict(next(iter(test_data))[0]).isfinite().all()
    ranking = str(properties_dir() / "protocol" / "ranking.yaml")
    result = run_coldmeta("MAMO", "tiny", [ranking], {**tiny_config, **IMPLICIT, "epochs": 2})
    assert {"recall@10", "ndcg@10"} <= set(result["test_result"])
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"meta_feedback": "implicit"}, "would be meaningless"),  # rating metrics
        ({**IMPLICIT, "prior": "biases"}, "prior=biases is a rating prior"),
        ({"prior": "bias"}, "prior='bias' is not one of auto, global_mean, biases"),
        ({"use_item_id": False, **IDS_ONLY}, "MAMO has no item input"),
    ],
)
def test_bad_settings_are_clear_errors(tiny_config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _setup(tiny_config, **overrides)
