"""MML: learners per modality, the fusion weights, the cold-item generator, missing modalities."""

import math
import shutil

import numpy as np
import pytest
import torch

from recbole_coldmeta.config import Config
from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.data.item_features import write_item_features
from recbole_coldmeta.model.sequential_layers import nearest_warm
from recbole_coldmeta.model.sequential_recommender.mml import MML
from recbole_coldmeta.quick_start import run_coldmeta
from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.enums import Phase


def _eval_rows(loader, index):
    """Rows of an evaluation loader's dataset with their users' support rows, as a batch has."""
    rows = loader._dataset.inter_feat[index]
    loader.support.add_to(rows)
    return rows


@pytest.fixture
def mml_config(sequential_cold_config):
    return sequential_cold_config


def prepare(config_dict):
    config = Config("MML", "tiny", config_dict=config_dict)
    train, valid, test = data_preparation(config, create_dataset(config))
    torch.manual_seed(0)
    return config, MML(config, train.dataset), (train, valid, test)


def test_smoke_run_ranks_cold_users_with_every_stage(mml_config):
    result = run_coldmeta("MML", "tiny", config_dict=mml_config)
    assert set(result["test_result"]) >= {"recall@10", "mrr@10", "ndcg@10"}
    assert all(math.isfinite(v) for v in result["test_result"].values())
    assert result["split"]["test_users"] > 0


def test_text_learner_from_item_texts_and_missing_image_is_logged(mml_config, caplog):
    _, model, _ = prepare(mml_config)
    assert model.modalities == ["id", "text"]
    assert "modality 'image' is dropped" in caplog.text


def test_strict_modalities_makes_a_missing_modality_an_error(mml_config):
    with pytest.raises(ConfigError, match="image"):
        prepare({**mml_config, "strict_modalities": True})


def test_id_only_runs_without_generator_and_with_fixed_fusion(mml_config):
    config = {**mml_config, "modalities": ["id"], "item_generator": False, "fusion": "fixed"}
    config["train_phases"] = [{"phase": "learners", "epochs": 1}]
    _, model, _ = prepare(config)
    assert model.modalities == ["id"] and model.generator is None
    with pytest.raises(ConfigError, match="generator"):
        prepare({**config, "train_phases": [{"phase": "learners"}, {"phase": "generator"}]})


def test_feature_files_give_learners_and_feed_the_generator(mml_config, tiny_data_path, tmp_path):
    config, model, _ = prepare(mml_config)
    tokens = list(model_tokens(config))
    rng = np.random.default_rng(0)
    folder = tmp_path / "with_features"
    shutil.copytree(f"{tiny_data_path}/tiny", folder / "tiny")
    write_item_features(folder / "tiny", "tiny", tokens, {"image": rng.normal(size=(80, 6))})
    _, model, _ = prepare({**mml_config, "data_path": str(folder)})
    assert model.modalities == ["id", "text", "image"]
    assert model.learners["image"].features.shape == (model.n_items, 6)


def model_tokens(config):
    dataset = create_dataset(config)
    return dataset.field2id_token[dataset.iid_field][1:]


def test_fusion_weights_sum_to_one_per_row(mml_config):
    _, model, (_, _, test) = prepare(mml_config)
    model.set_phase(Phase.FUSION)
    batch = _eval_rows(test, slice(8))
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
        vectors = {name: torch.randn(8, 16) for name in model.modalities}
        weights = model.fusion_weights(vectors)
    assert scores.shape == (8, model.n_items)
    assert weights.shape == (8, 2)
    assert torch.allclose(weights.sum(dim=1), torch.ones(8))
    assert not torch.allclose(weights, torch.full((8, 2), 0.5))  # learned, per user


def test_generator_replaces_cold_items_only(mml_config):
    _, model, _ = prepare({**mml_config, "cold_item_threshold": 8})
    cold = model.cold_item
    assert bool(cold.any()) and bool(model.warm_item.any())
    learned = model.learners["id"].item_vectors().detach()
    model.set_phase(Phase.LEARNERS)
    assert torch.equal(model.item_tables()["id"], learned)
    model.set_phase(Phase.GENERATOR)
    table = model.item_tables()["id"].detach()
    assert table.shape == learned.shape
    assert torch.equal(table[~cold], learned[~cold])
    assert not torch.equal(table[cold], learned[cold])
    generated = model.generator(torch.nonzero(cold).squeeze(1), learned)
    assert generated.shape == (int(cold.sum()), learned.shape[1])


def test_without_generator_a_cold_item_never_scores_its_random_row(mml_config):
    config = {**mml_config, "item_generator": False, "cold_item_threshold": 8}
    config["train_phases"] = [{"phase": "learners", "epochs": 1}, {"phase": "fusion", "epochs": 1}]
    _, model, (_, _, test) = prepare(config)
    cold = torch.nonzero(model.cold_item).squeeze(1)
    warm = torch.nonzero(model.warm_item).squeeze(1)
    assert len(cold) > 1 and len(warm) > 0
    model.eval()
    rows = _eval_rows(test, torch.arange(4))
    before = model.full_sort_predict(rows)
    table = model.learners["id"].item_embedding.weight
    with torch.no_grad():
        table[cold] = torch.randn(len(cold), table.shape[1])
    torch.testing.assert_close(model.full_sort_predict(rows), before)
    with torch.no_grad():
        table[warm] = torch.randn(len(warm), table.shape[1])
    assert not torch.allclose(model.full_sort_predict(rows)[:, warm], before[:, warm])


def test_nearest_warm_never_picks_itself_or_a_cold_item():
    features = torch.randn(12, 4)
    warm = torch.ones(12, dtype=torch.bool)
    warm[[0, 3, 7]] = False
    neighbours = nearest_warm(features, warm, k=3)
    assert neighbours.shape == (12, 3)
    assert bool(warm[neighbours].all())
    assert not bool((neighbours == torch.arange(12).unsqueeze(1)).any())


def test_evaluation_adapts_without_touching_meta_parameters(mml_config):
    _, model, (_, _, test) = prepare(mml_config)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        model.full_sort_predict(_eval_rows(test, slice(6)))
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_adaptation_changes_the_scores_of_a_cold_user(mml_config):
    _, model, (_, _, test) = prepare({**mml_config, "modalities": ["id"]})
    model.eval()
    batch = _eval_rows(test, slice(4))
    with torch.no_grad():
        adapted = model.full_sort_predict(batch)
        model.local_steps = 0
        plain = model.full_sort_predict(batch)
    assert not torch.allclose(adapted, plain)


def test_without_any_feature_the_generator_stage_is_skipped(mml_config):
    config = {**mml_config, "item_text_fields": None}
    result = run_coldmeta("MML", "tiny", config_dict=config)
    assert math.isfinite(result["test_result"]["ndcg@10"])
    _, model, _ = prepare(config)
    assert model.generator is None
    assert [phase for phase, _ in model.phase_plan] == [Phase.LEARNERS, Phase.FUSION]


def test_per_learner_choice_of_adapted_parameters(mml_config):
    config = {**mml_config, "local_update": {"id": "head", "text": "none"}}
    _, model, (_, _, test) = prepare(config)
    assert model.local_update["id"] == "head" and model.local_update["text"] == "none"
    model.eval()
    batch = next(iter(test))[0][:4]  # an evaluation batch carries its users' support rows
    tables = model.item_tables()
    fields = ("item_id_list", "item_length", "item", "mask")
    support = tuple(batch[f"support_{field}"] for field in fields)
    query = (batch["item_id_list"].unsqueeze(1), batch["item_length"].view(-1, 1))
    with torch.no_grad():
        vectors = model._adapted_user_vectors(tables, support, query, keep_graph=False)
        plain_text = model.learners["text"].head(model._encode("text", tables["text"], *query))
        plain_id = model.learners["id"].head(model._encode("id", tables["id"], *query))
    assert torch.allclose(vectors["text"], plain_text, atol=1e-6)  # not adapted
    assert not torch.allclose(vectors["id"], plain_id, atol=1e-6)  # adapted
    with pytest.raises(ConfigError, match="local_update"):
        prepare({**mml_config, "local_update": {"id": "everything"}})


def test_several_rows_of_one_user_share_one_adaptation(mml_config):
    _, model, (_, _, test) = prepare(mml_config)
    model.eval()
    rows = _eval_rows(test, slice(3))
    repeated = _eval_rows(test, torch.tensor([0, 1, 0, 2, 1]))
    with torch.no_grad():
        once = model.full_sort_predict(rows)
        again = model.full_sort_predict(repeated)
    assert torch.allclose(again, once[[0, 1, 0, 2, 1]], atol=1e-5)
