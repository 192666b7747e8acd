"""MeLU: meta-gradients, evaluation that adapts without touching the meta-parameters, shapes."""

import copy

import pytest
import torch

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.registry import get_model, get_trainer
from recbole_coldmeta.utils import ConfigError


def _setup(tiny_config, **overrides):
    config = build_config("MeLU", "tiny", config_dict={**tiny_config, **overrides})
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model = get_model("MeLU")(config, train_data.dataset)
    return config, model, train_data, valid_data, test_data


def test_meta_gradient_reaches_every_parameter(tiny_config):
    _, model, train_data, _, _ = _setup(tiny_config)
    batch = next(iter(train_data))
    model.calculate_loss(batch).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_adaptation_lowers_the_support_loss(tiny_config):
    _, model, train_data, _, _ = _setup(tiny_config)
    batch = next(iter(train_data))
    users, items, labels = batch["user_id"], batch["support_item"], batch["support_label"]
    mask = batch["support_mask"]
    x = model.features(users, items).detach()
    start = {
        n: p.unsqueeze(0).expand(len(users), *p.shape) for n, p in model.decision.named_parameters()
    }
    adapted = model.adapt_to(users, items, labels, mask, keep_graph=False)
    assert torch.all(
        model.task_loss(adapted, x, labels, mask.float())
        < model.task_loss(start, x, labels, mask.float())
    )


def test_evaluation_leaves_meta_parameters_byte_identical(tiny_config):
    config, model, train_data, valid_data, test_data = _setup(tiny_config, epochs=1)
    trainer = get_trainer(config["MODEL_TYPE"], "MeLU")(config, model)
    trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    before = copy.deepcopy(model.state_dict())
    first = trainer.evaluate(test_data, load_best_model=False)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert trainer.evaluate(test_data, load_best_model=False) == first


def test_predict_scores_rows_in_their_order_and_full_sort_agrees(tiny_config):
    _, model, _, _, test_data = _setup(tiny_config)
    model.eval()
    rows = test_data.dataset.inter_feat[:40]
    test_data.support.add_to(rows)  # each row's user's support rows, as in an evaluation batch
    scores = model.predict(rows)
    perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model.predict(rows[perm]), scores[perm])
    full = model.full_sort_predict(rows[:3]).view(3, -1)
    assert full.shape == (3, model.n_items)
    torch.testing.assert_close(full[torch.arange(3), rows["item_id"][:3]], scores[:3])


def test_cold_users_adapt_on_their_support_set(tiny_config):
    _, model, _, _, test_data = _setup(tiny_config)
    batch = next(iter(test_data))[0]
    user = int(batch["user_id"][0])
    assert batch["support_mask"][0].sum() > 0
    support_items = batch["support_item"][0][batch["support_mask"][0]]
    assert not set(support_items.tolist()) & set(
        test_data.dataset.inter_feat["item_id"][
            test_data.dataset.inter_feat["user_id"] == user
        ].tolist()
    )


def test_unknown_item_field_is_a_clear_error(tiny_config):
    with pytest.raises(ConfigError, match="item_fields names \\['director'\\]"):
        _setup(tiny_config, item_fields=["director"])


IMPLICIT = {"meta_feedback": "implicit", "task_neg_sample_num": 2}


def test_implicit_melu_learns_positives_against_negatives_and_ranks(tiny_config):
    from recbole_coldmeta.quick_start import run_coldmeta
    from recbole_coldmeta.utils import properties_dir

    _, model, train_data, _, test_data = _setup(
        tiny_config, **IMPLICIT, metrics=["Recall", "NDCG"], valid_metric="NDCG@10"
    )
    batch = next(iter(train_data))
    users = batch["user_id"]
    items, labels, mask = model.task_rows(
        batch["support_item"], batch["support_label"], batch["support_mask"],
        batch["support_neg_item"], batch["support_neg_mask"],
    )  # fmt: skip
    assert set(labels[mask].unique().tolist()) == {0.0, 1.0}
    x = model.features(users, items).detach()
    adapted = model.adapt_to(users, items, labels, mask, keep_graph=False)
    start = {
        n: p.detach().expand(len(users), *p.shape) for n, p in model.decision.named_parameters()
    }
    before = model.task_loss(start, x, labels, mask.float())
    assert torch.all(model.task_loss(adapted, x, labels, mask.float()) < before)
    # cold users adapt on their support positives and fixed negatives outside them
    batch = next(iter(test_data))[0]
    for row in range(5):
        support = set(batch["support_item"][row][batch["support_mask"][row]].tolist())
        negatives = batch["support_neg_item"][row][batch["support_neg_mask"][row]].tolist()
        assert negatives and not support & set(negatives)

    ranking = str(properties_dir() / "protocol" / "ranking.yaml")
    result = run_coldmeta("MeLU", "tiny", [ranking], {**tiny_config, **IMPLICIT, "epochs": 2})
    assert {"recall@10", "ndcg@10"} <= set(result["test_result"])
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0


@pytest.mark.parametrize(
    "model, overrides, message",
    [
        ("MeLU", {**IMPLICIT, "task_neg_sample_num": 0}, "task_neg_sample_num >= 1"),
        ("MeLU", IMPLICIT, "would be meaningless"),  # the rating protocol's MAE/RMSE
        (
            "CCML",
            {**IMPLICIT, "metrics": ["NDCG"], "valid_metric": "NDCG@10"},
            "meta_feedback=implicit is MeLU's",
        ),
    ],
)
def test_bad_feedback_settings_are_clear_errors(tiny_config, model, overrides, message):
    config = build_config(model, "tiny", config_dict={**tiny_config, **overrides})
    train_data, _, _ = data_preparation(config, create_dataset(config))
    with pytest.raises(ConfigError, match=message):
        get_model(model)(config, train_data.dataset)


def test_the_bias_prior_contains_user_item_bias(tiny_config):
    """With prior=biases and a network that outputs 0 (no adaptation step), MeLU predicts
    exactly UserItemBias: the meta-learner contains the baseline."""
    from recbole_coldmeta.quick_start.quick_start import build_model_and_trainer

    _, model, train_data, _, test_data = _setup(
        tiny_config, prior="biases", prior_shrinkage=3, local_steps=0
    )
    with torch.no_grad():
        model.decision[-1].weight.zero_()
        model.decision[-1].bias.zero_()
    model.eval()
    bias_config = build_config(
        "UserItemBias", "tiny", config_dict={**tiny_config, "shrinkage_grid": [3]}
    )
    bias_model, _ = build_model_and_trainer(bias_config, train_data.dataset)
    bias_model.fit_setting({"shrinkage": 3})
    for batch in test_data:
        interaction = batch[0]
        torch.testing.assert_close(model.predict(interaction), bias_model.predict(interaction))


def test_a_meta_train_query_rating_is_left_out_of_its_item_bias(tiny_config):
    _, model, train_data, _, _ = _setup(tiny_config, prior="biases", prior_shrinkage=2)
    prior = model.bias_prior
    inter = train_data.dataset.inter_feat
    item, rating = inter["item_id"][:1].view(1, 1), inter["rating"][:1].float().view(1, 1)
    rows = inter["item_id"] == item.item()
    residual = inter["rating"][rows].float() - inter["rating"].float().mean()
    held = prior.item_bias(item, held_out=(rating, torch.ones_like(item, dtype=torch.bool)))
    expected = (residual.sum() - (rating - inter["rating"].float().mean())) / (2 + rows.sum() - 1)
    torch.testing.assert_close(held, expected.view(1, 1))
    torch.testing.assert_close(
        prior.item_bias(item), (residual.sum() / (2 + rows.sum())).view(1, 1)
    )


def test_prior_auto_is_the_bias_prior_for_ratings_and_the_mean_for_implicit(tiny_config):
    _, model, _, _, _ = _setup(tiny_config, prior="auto")
    assert model.prior == "biases" and model.bias_prior is not None
    _, model, _, _, _ = _setup(
        tiny_config, prior="auto", **IMPLICIT, metrics=["NDCG"], valid_metric="NDCG@10"
    )
    assert model.prior == "global_mean" and model.bias_prior is None


def test_the_bias_prior_is_for_ratings(tiny_config):
    with pytest.raises(ConfigError, match="prior=biases is a rating prior"):
        _setup(tiny_config, prior="biases", **IMPLICIT, metrics=["NDCG"], valid_metric="NDCG@10")
    with pytest.raises(ConfigError, match="prior='bias' is not one of"):
        build_config("MeLU", "tiny", config_dict={**tiny_config, "prior": "bias"})


def test_misspelt_feedback_is_refused_by_the_config(tiny_config):
    with pytest.raises(ConfigError, match="is not one of explicit, implicit"):
        build_config("MeLU", "tiny", config_dict={**tiny_config, "meta_feedback": "implicite"})
