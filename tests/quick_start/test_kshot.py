"""K-shot curves: the same users at every K, K = full support reproduces the plain evaluation,
K = 0 is no adaptation, refitted models see only K support rows, bad input fails before training."""

import math

import numpy as np
import pytest
import torch

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.data.dataloader.support import support_slots
from recbole_coldmeta.evaluator import aggregate, per_user_metrics
from recbole_coldmeta.quick_start import build_config, run_coldmeta
from recbole_coldmeta.quick_start import quick_start as quick_start_module
from recbole_coldmeta.quick_start.kshot import evaluate_shots
from recbole_coldmeta.quick_start.quick_start import build_model_and_trainer
from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.enums import Role

CCML_SMALL = {"n_similar": 5, "n_negative": 10, "n_beneficial": 3, "pool_size": 20}


def _prepare(model, config_dict):
    config = build_config(model, "tiny", config_dict=config_dict)
    dataset = create_dataset(config)
    return config, dataset, data_preparation(config, dataset)


def _test_metrics(result):
    """The run's test metrics, from its per-user rows, unrounded."""
    rows = [row for row in result["user_results"] if row["split"] == "test"]
    n_rows = np.array([row["n_rows"] for row in rows])
    names = result["shot_results"][next(iter(result["shot_results"]))]
    values = {key: np.array([row[key] for row in rows]) for key in rows[0] if key != "split"}
    return {name: float(aggregate(name, values, n_rows)) for name in names}


@pytest.mark.parametrize("model", ["MeLU", "UserItemBias"])
def test_full_support_reproduces_the_plain_evaluation_exactly(model, tiny_config):
    # support_mode first: every cold user has exactly 5 support rows, so K = 5 is all of them
    config = {**tiny_config, "support_mode": "first", "support_size": 5, "user_results": True}
    result = run_coldmeta(model, "tiny", config_dict={**config, "shots": [0, 2, 5]})
    assert result["shot_users"] == result["split"]["test_users"]
    assert result["shot_refit"] is (model == "UserItemBias")
    assert result["shot_results"]["5"] == _test_metrics(result)
    assert result["shot_results"]["0"] != result["shot_results"]["5"]  # the cut changes them
    for name, value in result["test_result"].items():
        assert abs(result["shot_results"]["5"][name] - value) <= 0.5e-4 + 1e-12, name


def test_every_k_scores_the_same_users_those_with_max_k_support_rows(tiny_config):
    # support_mode all_but_query: 5 to 20 support rows a user, so K = 12 leaves some out
    config, dataset, loaders = _prepare("MeLU", {**tiny_config, "shots": [12, 0, 3]})
    _, trainer = build_model_and_trainer(config, loaders[0].dataset)
    per_shot = evaluate_shots(config, dataset, trainer, loaders, build_model_and_trainer)
    assert list(per_shot) == [0, 3, 12]
    users = [shot_users for shot_users, _ in per_shot.values()]
    assert all(torch.equal(users[0], other) for other in users)
    sizes = support_slots(loaders[0].dataset)[1].sum(dim=1)
    test_users = torch.unique(loaders[2].dataset.inter_feat["user_id"])
    expected = test_users[sizes[test_users] >= 12]
    assert torch.equal(users[0], expected) and 0 < len(expected) < len(test_users)


def _per_user(config, trainer, loader):
    trainer.eval_collector.keep_users = True
    trainer.evaluate(loader, load_best_model=False)
    return per_user_metrics(config, trainer.eval_collector.last_struct)


def test_melu_with_zero_shots_is_its_unadapted_prediction(tiny_config):
    # the global-mean prior: the bias prior's b_u is the support's, so K = 0 changes it too
    config, _, (train, _, test) = _prepare("MeLU", {**tiny_config, "prior": "global_mean"})
    model, trainer = build_model_and_trainer(config, train.dataset)
    with test.support_limit(0):
        _, _, empty = _per_user(config, trainer, test)
    model.local_steps = 0  # no adaptation, on the full support
    _, _, unadapted = _per_user(config, trainer, test)
    assert all(torch.equal(empty[name], unadapted[name]) for name in unadapted)
    model.local_steps = config["local_steps"]
    _, _, adapted = _per_user(config, trainer, test)
    assert not torch.equal(adapted["mae"], unadapted["mae"])


@pytest.mark.parametrize("model", ["CCML", "TaNP"])
def test_other_meta_learners_score_an_empty_support(model, tiny_config):
    config, _, (train, _, test) = _prepare(model, {**tiny_config, **CCML_SMALL})
    _, trainer = build_model_and_trainer(config, train.dataset)
    with test.support_limit(0):
        _, _, first = _per_user(config, trainer, test)
        _, _, again = _per_user(config, trainer, test)
    assert all(torch.isfinite(values).all() for values in first.values())
    assert all(torch.equal(first[name], again[name]) for name in first)  # deterministic
    _, _, full = _per_user(config, trainer, test)
    assert not torch.equal(first["mae"], full["mae"])


def test_refitted_models_are_fitted_on_k_support_rows_a_cold_user(tiny_config):
    config, dataset, loaders = _prepare("UserMean", {**tiny_config, "shots": [0, 2]})
    _, trainer = build_model_and_trainer(config, loaders[0].dataset)
    seen = []  # per refit: the cold users' support sizes, and the meta-train rows

    def build(config, train_dataset):
        cold = train_dataset.cold_roles != Role.META_TRAIN
        counts = torch.bincount(train_dataset.inter_feat["user_id"][cold])
        seen.append((counts[counts > 0].unique().tolist(), int((~cold).sum())))
        return build_model_and_trainer(config, train_dataset)

    per_shot = evaluate_shots(config, dataset, trainer, loaders, build)
    meta = int((loaders[0].dataset.cold_roles == Role.META_TRAIN).sum())
    assert seen == [([], meta), ([2], meta)]
    # UserMean with no support row predicts the fallback for every cold user; with 2 it differs
    assert per_shot[0][1]["mae"] != per_shot[2][1]["mae"]


def test_shots_beyond_every_support_fail_before_training(tiny_config, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(quick_start_module, "build_model_and_trainer", no_training)
    with pytest.raises(ConfigError, match=r"largest K=21 exceeds every test user's support"):
        run_coldmeta("MeLU", "tiny", config_dict={**tiny_config, "shots": [0, 21]})


@pytest.mark.parametrize(
    "shots, message",
    [
        ([-1, 3], r"shots=\[-1, 3\] must be a non-empty list of integers, each >= 0"),
        ([1.5], r"shots=\[1.5\] must be"),
        ([], r"shots=\[\] must be"),
        (3, r"shots=3 must be"),
    ],
)
def test_bad_shots_are_refused_by_the_config_check(shots, message, tiny_config):
    with pytest.raises(ConfigError, match=message):
        run_coldmeta("MeLU", "tiny", config_dict={**tiny_config, "shots": shots})


def test_shots_are_refused_for_sequential_models(tiny_config):
    with pytest.raises(ConfigError, match="SASRec is sequential"):
        run_coldmeta("SASRec", "tiny", config_dict={**tiny_config, "shots": [0, 1]})


def test_a_run_without_shots_has_no_shot_results(tiny_config):
    result = run_coldmeta("GlobalMean", "tiny", config_dict=tiny_config)
    assert not [key for key in result if key.startswith("shot")]
    assert not math.isnan(result["test_result"]["mae"])
