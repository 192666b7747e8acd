"""The simple rating baselines: closed forms checked against direct computation."""

import pytest
import torch

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.data.dataset import Role
from recbole_coldmeta.quick_start import build_config, run_coldmeta
from recbole_coldmeta.registry import get_model
from recbole_coldmeta.utils import ConfigError


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
    model.on_epoch_start(0)  # shrinkage 0
    item = int(train.inter_feat["item_id"][0])
    rows = train.inter_feat["item_id"] == item
    expected = train.inter_feat["rating"][rows].mean() - model.global_mean
    assert torch.isclose(model.item_bias[item], expected, atol=1e-5)
    unshrunk = model.item_bias.clone()
    model.on_epoch_start(10)  # shrinkage 100 pulls every bias towards 0
    assert model.shrinkage == 100
    assert torch.all(model.item_bias.abs() <= unshrunk.abs() + 1e-6)
    assert model.item_bias.abs().sum() < unshrunk.abs().sum()


def test_user_item_bias_selects_shrinkage_on_validation(tiny_config):
    result = run_coldmeta("UserItemBias", "tiny", config_dict={**tiny_config, "epochs": 11})
    assert (
        result["valid_result"]["mae"]
        <= run_coldmeta("UserItemBias", "tiny", config_dict={**tiny_config, "epochs": 1})[
            "valid_result"
        ]["mae"]
    )


def test_user_item_bias_rejects_negative_shrinkage(tiny_config):
    with pytest.raises(ConfigError, match="shrinkage_grid"):
        _model("UserItemBias", tiny_config, shrinkage_grid=[-1])


@pytest.mark.parametrize("name", ["GlobalMean", "ItemMean", "UserMean", "UserItemBias"])
def test_baseline_runs_and_reports_rating_metrics(name, tiny_config):
    overrides = {} if name != "UserItemBias" else {"epochs": 11}
    result = run_coldmeta(name, "tiny", config_dict={**tiny_config, **overrides})
    assert {"mae", "rmse", "query_ndcg@1", "query_ndcg@3", "query_ndcg@5"} == set(
        result["test_result"]
    )
    assert 0.3 < result["test_result"]["mae"] < 2.0
