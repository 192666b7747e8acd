"""TaNP: the support set conditions the scores, evaluation touches no parameter, batched equals
per-task, the loss goes down, the implicit variant ranks, bad settings are clear errors."""

import copy

import pytest
import torch

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.model.cold_start_recommender.tanp import (
    TaskMemory,
    clustering_loss,
    gaussian_kl,
)
from recbole_coldmeta.quick_start import build_config, run_coldmeta
from recbole_coldmeta.registry import get_model, get_trainer
from recbole_coldmeta.utils import ConfigError, properties_dir

IMPLICIT = {
    "meta_feedback": "implicit",
    "task_neg_sample_num": 2,
    "metrics": ["Recall", "NDCG"],
    "valid_metric": "NDCG@10",
}


def _setup(tiny_config, **overrides):
    config = build_config("TaNP", "tiny", config_dict={**tiny_config, **overrides})
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model = get_model("TaNP")(config, train_data.dataset)
    return config, model, train_data, valid_data, test_data


def _eval_batch(test_data):
    return next(iter(test_data))[0]


@pytest.mark.parametrize("modulation", ["film", "gating"])
def test_a_support_label_changes_the_scores_and_query_labels_do_not(tiny_config, modulation):
    _, model, _, _, test_data = _setup(tiny_config, modulation=modulation)
    model.eval()
    batch = _eval_batch(test_data)
    scores = model.predict(batch)
    changed = copy.copy(batch)
    labels = batch["support_label"].clone()
    labels[:, 0] = torch.where(labels[:, 0] > 3, 1.0, 5.0)  # every user's first support rating
    changed.interaction = {**batch.interaction, "support_label": labels}
    assert not torch.allclose(model.predict(changed), scores)
    hidden = copy.copy(batch)
    hidden.interaction = {**batch.interaction, "rating": torch.zeros_like(batch["rating"])}
    torch.testing.assert_close(model.predict(hidden), scores)  # query labels are never read


def test_evaluation_leaves_parameters_byte_identical_and_repeats(tiny_config):
    config, model, train_data, valid_data, test_data = _setup(tiny_config, epochs=1)
    trainer = get_trainer(config["MODEL_TYPE"], "TaNP")(config, model)
    trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    before = copy.deepcopy(model.state_dict())
    first = trainer.evaluate(test_data, load_best_model=False)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert trainer.evaluate(test_data, load_best_model=False) == first


def _task(batch, t):
    """Task ``t`` of a training batch alone, its padding cut off."""
    size = int(batch["support_mask"][t].sum())
    return (
        batch["user_id"][t : t + 1],
        (
            batch["support_item"][t : t + 1, :size],
            batch["support_label"][t : t + 1, :size],
            batch["support_mask"][t : t + 1, :size],
        ),
        batch["query_item"][t : t + 1],
    )


@pytest.mark.parametrize("modulation", ["film", "gating"])
def test_a_batch_of_tasks_scores_as_each_task_alone(tiny_config, modulation):
    _, model, train_data, _, _ = _setup(tiny_config, modulation=modulation)
    model.eval()
    batch = next(iter(train_data))
    support = (batch["support_item"], batch["support_label"], batch["support_mask"])
    assert len(set(batch["support_mask"].sum(dim=1).tolist())) > 1  # padding differs per task
    together = model.conditioned_scores(batch["user_id"], support, batch["query_item"])
    for t in range(len(batch["user_id"])):
        alone = model.conditioned_scores(*_task(batch, t))
        torch.testing.assert_close(alone[0], together[t], atol=1e-6, rtol=0)


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


def test_the_loss_decreases_on_a_tiny_problem(tiny_config):
    _, model, train_data, _, _ = _setup(tiny_config, learning_rate=0.01)
    batch = next(iter(train_data))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(60):
        model.latent_generator.manual_seed(0)  # the same draw of z each step
        loss = model.calculate_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_every_parameter_gets_a_gradient(tiny_config):
    _, model, train_data, _, _ = _setup(tiny_config, modulation="gating")
    model.calculate_loss(next(iter(train_data))).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_training_draws_of_z_are_seeded(tiny_config):
    losses = []
    for other_seed in range(2):
        _, model, train_data, _, _ = _setup(tiny_config)
        torch.manual_seed(other_seed)  # the global generator plays no part
        losses.append(model.calculate_loss(next(iter(train_data))).item())
    assert losses[0] == losses[1]


def test_kl_and_clustering_loss_by_hand():
    mean_q, log_var_q = torch.tensor([[1.0, 0.0]]), torch.log(torch.tensor([[1.0, 4.0]]))
    mean_p, log_var_p = torch.zeros(1, 2), torch.zeros(1, 2)
    # KL(N(1, 1) || N(0, 1)) = 0.5; KL(N(0, 4) || N(0, 1)) = 0.5 * (4 - 1 - ln 4)
    expected = 0.5 + 0.5 * (4 - 1 - torch.log(torch.tensor(4.0)))
    torch.testing.assert_close(gaussian_kl(mean_q, log_var_q, mean_p, log_var_p)[0], expected)
    assert gaussian_kl(mean_p, log_var_p, mean_p, log_var_p).item() == 0.0
    uniform = torch.full((3, 4), 0.25)
    assert clustering_loss(uniform).item() == pytest.approx(0.0, abs=1e-7)
    assert clustering_loss(torch.tensor([[0.7, 0.3], [0.4, 0.6]])).item() > 0


def test_the_memory_assigns_a_task_to_its_nearest_centre():
    memory = TaskMemory(n_clusters=3, size=2, temperature=1.0)
    with torch.no_grad():
        memory.centres.copy_(torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]]))
    assignment, task = memory(torch.tensor([[4.5, 0.0]]))
    assert assignment.argmax().item() == 1 and assignment.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(task, torch.tensor([[4.5, 0.0]]) + assignment @ memory.centres)


def test_implicit_tanp_learns_positives_against_negatives_and_ranks(tiny_config):
    _, model, train_data, _, test_data = _setup(tiny_config, **IMPLICIT)
    batch = next(iter(train_data))
    assert "support_neg_item" in batch and model.calculate_loss(batch).isfinite()
    model.eval()
    full = model.full_sort_predict(_eval_batch(test_data))
    assert full.isfinite().all()
    ranking = str(properties_dir() / "protocol" / "ranking.yaml")
    result = run_coldmeta("TaNP", "tiny", [ranking], {**tiny_config, **IMPLICIT, "epochs": 2})
    assert {"recall@10", "ndcg@10"} <= set(result["test_result"])
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"modulation": "films"}, "modulation='films' is not one of film, gating"),
        ({"meta_feedback": "implicit"}, "would be meaningless"),  # rating metrics
        ({"use_item_id": False, "load_col": {"inter": ["user_id", "item_id", "rating"]}},
         "TaNP has no item input"),
        ({"dot_head": "yes"}, "dot_head='yes' is not one of auto"),
    ],
)  # fmt: skip
def test_bad_settings_are_clear_errors(tiny_config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        _setup(tiny_config, **overrides)


def test_dot_head_is_on_for_implicit_feedback_only_and_starts_at_zero(tiny_config):
    assert _setup(tiny_config)[1].dot_head is None  # auto, ratings: off
    _, model, train_data, _, test_data = _setup(tiny_config, **IMPLICIT)
    assert model.dot_head is not None and not model.dot_head.weight.any()
    model.train()
    batch = next(iter(train_data))
    model.calculate_loss(batch).backward()  # ids are scored from trained rows only
    model.eval()
    batch = _eval_batch(test_data)

    def without_head():
        head, model.dot_head = model.dot_head, None
        scores = model.full_sort_predict(batch)
        model.dot_head = head
        return scores

    torch.testing.assert_close(model.full_sort_predict(batch), without_head())
    with torch.no_grad():
        model.dot_head.weight.normal_()
    scores = model.full_sort_predict(batch)
    assert not torch.allclose(scores, without_head())
    changed = copy.copy(batch)
    items = batch["support_item"].roll(1, dims=0)  # every user gets another's support items
    changed.interaction = {**batch.interaction, "support_item": items}
    assert not torch.allclose(model.full_sort_predict(changed), scores)  # the term reads them
