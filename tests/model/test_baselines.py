"""The simple rating baselines: closed forms checked against direct computation, and
StatisticTrainer's selection of a setting on validation data."""

import pytest
import torch

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.data.dataset import Role
from recbole_coldmeta.quick_start import build_config, run_coldmeta
from recbole_coldmeta.quick_start.quick_start import build_model_and_trainer
from recbole_coldmeta.registry import get_model, get_trainer
from recbole_coldmeta.trainer import StatisticTrainer, load_own_checkpoint
from recbole_coldmeta.utils import ConfigError

BASELINES = ["GlobalMean", "ItemMean", "UserMean", "UserItemBias"]

#: test metrics on ``tiny`` (seed 2020) of the trainer these models had before StatisticTrainer
#: (RecBole's fit over the train loader, one shrinkage value per epoch, epochs: 11).
BEFORE = {
    "GlobalMean": {"mae": 1.0674, "rmse": 1.251, "query_ndcg@1": 0.7361},
    "ItemMean": {"mae": 0.9518, "rmse": 1.1263, "query_ndcg@1": 0.8667},
    "UserMean": {"mae": 0.9517, "rmse": 1.1274, "query_ndcg@1": 0.7361},
    "UserItemBias": {"mae": 0.8092, "rmse": 0.9807, "query_ndcg@1": 0.8667},
}


class UnreadableLoader:
    """A train loader that fails when iterated (its dataset stays readable)."""

    def __init__(self, loader):
        self.dataset = loader.dataset

    def __iter__(self):
        raise AssertionError("StatisticTrainer iterated the train loader")


def _trainer(name, tiny_config, **overrides):
    config = build_config(name, "tiny", config_dict={**tiny_config, **overrides})
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model, trainer = build_model_and_trainer(config, train_data.dataset)
    return model, trainer, (train_data, valid_data, test_data)


def _model(name, tiny_config, **overrides):
    config = build_config(name, "tiny", config_dict={**tiny_config, **overrides})
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    return get_model(name)(config, train_data.dataset), train_data.dataset, test_data.dataset


def test_global_and_user_mean(tiny_config):
    model, train, test = _model("UserMean", tiny_config)
    ratings = train.inter_feat["rating"]
    assert torch.isclose(model.global_mean, ratings.mean())
    user = int(test.inter_feat["user_id"][0])
    support = (train.inter_feat["user_id"] == user) & (train.cold_roles == Role.TEST_SUPPORT)
    row = test.inter_feat[:1]
    assert torch.isclose(model.predict(row)[0], ratings[support].mean())


def test_item_mean_falls_back_to_global_mean(tiny_config):
    model, train, _ = _model("ItemMean", tiny_config)
    unseen = set(range(1, model.n_items)) - set(train.inter_feat["item_id"].tolist())
    seen = int(train.inter_feat["item_id"][0])
    expected = train.inter_feat["rating"][train.inter_feat["item_id"] == seen].mean()
    assert torch.isclose(model.item_mean[seen], expected)
    for item in unseen:
        assert model.item_mean[item] == model.global_mean


def test_user_item_bias_zero_shrinkage_fits_item_means(tiny_config):
    model, train, _ = _model("UserItemBias", tiny_config)
    model.fit_setting({"shrinkage": 0})
    item = int(train.inter_feat["item_id"][0])
    rows = train.inter_feat["item_id"] == item
    expected = train.inter_feat["rating"][rows].mean() - model.global_mean
    assert torch.isclose(model.item_bias[item], expected, atol=1e-5)
    unshrunk = model.item_bias.clone()
    model.fit_setting({"shrinkage": 100})  # pulls every bias towards 0
    assert model.shrinkage == 100
    assert torch.all(model.item_bias.abs() <= unshrunk.abs() + 1e-6)
    assert model.item_bias.abs().sum() < unshrunk.abs().sum()


@pytest.mark.parametrize("name", BASELINES)
def test_statistic_trainer_never_reads_the_train_loader(name, tiny_config):
    assert get_trainer(None, name) is StatisticTrainer
    _, trainer, (train_data, valid_data, _) = _trainer(name, tiny_config)
    score, result = trainer.fit(UnreadableLoader(train_data), valid_data, show_progress=False)
    assert result is not None and score == result["mae"]


def test_user_item_bias_keeps_the_shrinkage_best_on_validation(tiny_config):
    model, trainer, (train_data, valid_data, test_data) = _trainer("UserItemBias", tiny_config)
    by_hand = []
    for setting in model.candidate_settings():
        model.fit_setting(setting)
        valid = trainer.evaluate(valid_data, load_best_model=False)
        by_hand.append((valid["mae"], trainer.evaluate(test_data, load_best_model=False)))
    best = min(range(len(by_hand)), key=lambda p: (by_hand[p][0], -p))  # a later tie wins
    assert len({mae for mae, _ in by_hand}) > 1  # the grid matters on this data

    score, result = trainer.fit(train_data, valid_data)
    assert score == result["mae"] == by_hand[best][0]
    assert model.shrinkage == model.shrinkage_grid[best]  # the selected fit stays in memory
    model.fit_setting({"shrinkage": 1e6})
    assert trainer.evaluate(test_data, load_best_model=True) == by_hand[best][1]
    assert model.shrinkage == model.shrinkage_grid[best]  # reloaded from the checkpoint


def test_a_tie_on_validation_keeps_the_later_setting_as_recbole_does(tiny_config):
    _, trainer, (train_data, valid_data, _) = _trainer(
        "UserItemBias", tiny_config, shrinkage_grid=[7, 7]
    )
    trainer.fit(train_data, valid_data)
    assert load_own_checkpoint(trainer.saved_model_file, "cpu")["epoch"] == 1


def test_user_item_bias_rejects_negative_shrinkage(tiny_config):
    with pytest.raises(ConfigError, match="shrinkage_grid"):
        _model("UserItemBias", tiny_config, shrinkage_grid=[-1])


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_runs_and_gives_the_numbers_of_the_former_trainer(name, tiny_config):
    result = run_coldmeta(name, "tiny", config_dict=tiny_config)
    assert {"mae", "rmse", "query_ndcg@1", "query_ndcg@3", "query_ndcg@5"} == set(
        result["test_result"]
    )
    assert {key: result["test_result"][key] for key in BEFORE[name]} == BEFORE[name]
