"""Cross-domain models: the shared bridge layers, phased training, no leakage, a run per model."""

import math
import shutil

import pytest
import torch

from recbole_coldmeta.config import Config
from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.data.dataset import Phase
from recbole_coldmeta.model.layers import CharacteristicEncoder, MetaBridge
from recbole_coldmeta.quick_start import run_coldmeta
from recbole_coldmeta.registry import get_model, get_trainer
from recbole_coldmeta.utils import ConfigError

MODELS = ["TargetMF", "EMCDR", "SSCDR", "PTUPCDR", "MetaMMCDR"]


def prepare(config_dict, model="PTUPCDR"):
    config = Config(model=model, config_dict=config_dict)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    torch.manual_seed(0)
    model = get_model(config["model"])(config, train.dataset)
    return config, model, (train, valid, test)


def test_attention_is_a_distribution_over_the_user_items():
    encoder = CharacteristicEncoder(6, 8)
    features = torch.randn(3, 5, 6)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    pooled, attention = encoder(features, mask)
    assert pooled.shape == (3, 6)
    assert torch.allclose(attention[:2].sum(dim=1), torch.ones(2))
    assert bool((attention[~mask] == 0).all())
    assert torch.allclose(pooled[1], features[1, 0])
    assert torch.allclose(pooled[0], (attention[0].unsqueeze(1) * features[0]).sum(dim=0))
    assert torch.equal(pooled[2], encoder.empty)  # no items: the learned vector


def test_meta_bridge_emits_a_k_by_k_matrix_per_user():
    bridge = MetaBridge(input_size=7, embedding_size=4, meta_dim=9)
    characteristic, source = torch.randn(5, 7), torch.randn(5, 4)
    weights = bridge.weights(characteristic)
    assert weights.shape == (5, 4, 4)
    expected = torch.stack([source[b] @ weights[b] for b in range(5)])
    assert torch.allclose(bridge(characteristic, source), expected, atol=1e-6)


def test_history_keeps_the_last_items_rated_above_the_threshold(cdr_config):
    _, model, (train, _, _) = prepare({**cdr_config, "history_max_len": 3})
    source = train.dataset.source
    inter = source.inter_feat
    for user in range(1, 8):
        rows = torch.nonzero((inter["user_id"] == user) & (inter["rating"] > 3)).squeeze(1)
        expected = inter["item_id"][rows][-3:].tolist()
        got = model.history_item[user][model.history_mask[user]].tolist()
        assert got == expected


def test_bridge_phase_trains_only_the_bridge(cdr_config):
    _, model, (train, _, _) = prepare(cdr_config)
    model.set_phase(Phase.BRIDGE)
    batch = train.dataset.phase_data[Phase.BRIDGE][0].inter_feat[:32]
    model.calculate_loss(batch).backward()
    for domain in (model.source_model, model.target_model):
        assert all(p.grad is None for p in domain.parameters())
    bridge_ids = {id(p) for p in model.phase_parameters(Phase.BRIDGE)}
    assert bridge_ids and all(p.grad is not None for p in model.parameters() if id(p) in bridge_ids)


@pytest.mark.parametrize("model_name", MODELS)
def test_every_model_runs_on_the_same_split(cdr_config, model_name):
    result = run_coldmeta(model=model_name, config_dict={**cdr_config, "epochs": 2}, saved=True)
    assert result["split"]["test_users"] > 0
    for metric in ("mae", "rmse"):
        assert math.isfinite(result["test_result"][metric])
    assert result["test_result"]["mae"] < 5.0


def test_the_split_is_the_same_for_every_model(cdr_config):
    splits = {m: run_coldmeta(model=m, config_dict=cdr_config)["split"] for m in MODELS[:2]}
    assert splits["TargetMF"] == splits["EMCDR"]


def test_target_mf_paper_variant_scores_cold_users_with_random_embeddings(cdr_config):
    def mae(fallback):
        config = {**cdr_config, "epochs": 5, "cold_user_fallback": fallback}
        return run_coldmeta(model="TargetMF", config_dict=config)["test_result"]["mae"]

    assert mae("embedding") > 2.5  # ratings average ~3.6, random user vectors score ~0
    assert mae("item_mean") < 1.5


def test_phases_train_in_order_with_their_own_settings(cdr_config):
    config = {
        **cdr_config,
        "pretrain_refit": False,  # one trainer per phase (a refit builds a second one)
        "train_phases": [
            {"phase": "source_pretrain", "epochs": 2},
            {"phase": "target_pretrain", "learning_rate": 0.05},
            {"phase": "bridge", "epochs": 3},
        ],
    }
    config_obj, model, (train, valid, _) = prepare(config)
    trainer = get_trainer(config_obj["MODEL_TYPE"], "PTUPCDR")(config_obj, model)
    seen = []
    original = trainer.phase_trainer

    def record(phase, settings, base_config, progress):
        seen.append((phase, settings["epochs"], settings["learning_rate"]))
        phase_trainer = original(phase, settings, base_config, progress)
        assert phase_trainer.epochs == settings["epochs"]
        assert phase_trainer.optimizer.param_groups[0]["lr"] == settings["learning_rate"]
        return phase_trainer

    trainer.phase_trainer = record
    trainer.fit(train, valid, saved=True)
    assert seen == [
        (Phase.SOURCE_PRETRAIN, 2, 0.01),
        (Phase.TARGET_PRETRAIN, 1, 0.05),
        (Phase.BRIDGE, 3, 0.01),
    ]
    assert model.phase == Phase.BRIDGE


@pytest.mark.parametrize(
    "phases, message",
    [
        ([{"phase": "bridge"}, {"phase": "source_pretrain"}], "order"),
        ([{"phase": "bridging"}], "bridging"),
        ([{"phase": "bridge", "epoch": 3}], "unknown key"),
        ([], "non-empty"),
    ],
)
def test_bad_phase_plans_are_refused(cdr_config, phases, message):
    with pytest.raises(ConfigError, match=message):
        prepare({**cdr_config, "train_phases": phases})


def test_target_mf_refuses_a_bridge_phase(cdr_config):
    with pytest.raises(ConfigError, match="not one of TargetMF"):
        prepare({**cdr_config, "train_phases": [{"phase": "bridge"}]}, model="TargetMF")


def test_no_target_rating_of_a_test_user_reaches_training(cdr_data_path, cdr_config, tmp_path):
    """Training twice, once with every test user's target ratings changed, gives the same model."""
    _, _, (_, _, test) = prepare(cdr_config)
    test_set = test.dataset
    tokens = test_set.field2id_token["user_id"]
    test_tokens = {tokens[u] for u in test_set.inter_feat["user_id"].tolist()}
    folder = tmp_path / "changed"
    shutil.copytree(cdr_data_path, folder)
    inter = folder / "cdr-t" / "cdr-t.inter"
    lines = inter.read_text().splitlines()
    for index, line in enumerate(lines[1:], start=1):
        user, item, rating = line.split("\t")
        if user in test_tokens:
            lines[index] = f"{user}\t{item}\t{6 - float(rating)}"
    inter.write_text("\n".join(lines) + "\n")

    def trained_state(data_path):
        config = {**cdr_config, "data_path": str(data_path), "epochs": 2}
        config_obj, model, (train, valid, _) = prepare(config)
        trainer = get_trainer(config_obj["MODEL_TYPE"], "PTUPCDR")(config_obj, model)
        torch.manual_seed(1)
        trainer.fit(train, valid, saved=False)
        return model.state_dict()

    original, changed = trained_state(cdr_data_path), trained_state(folder)
    assert original.keys() == changed.keys()
    for name in original:
        assert torch.equal(original[name], changed[name]), name


def test_meta_mmcdr_text_embeddings_with_fallback_and_cache(cdr_config, tmp_path):
    _, model, _ = prepare(cdr_config, model="MetaMMCDR")
    missing = model.item_text_missing
    assert bool(missing.any()) and not bool(missing.all())
    assert list((tmp_path / "text_cache").glob("text_emb_*.pt"))
    items = torch.nonzero(missing).squeeze(1)[:2].unsqueeze(0)  # [1, 2] items without text
    assert torch.equal(model.history_features(items)[0, 0], model.missing_text.detach())
    assert model.encoder.score[0].in_features == model.item_text.shape[1]


def test_meta_mmcdr_with_id_embeddings_is_the_ablation(cdr_config):
    _, model, _ = prepare({**cdr_config, "characteristic_input": "id"}, model="MetaMMCDR")
    assert model.encoder.score[0].in_features == model.embedding_size
    assert not hasattr(model, "item_text")


def test_meta_mmcdr_missing_encoder_is_a_clear_error(cdr_config, tmp_path):
    with pytest.raises(ConfigError, match="nothing is downloaded"):
        prepare({**cdr_config, "text_encoder": str(tmp_path / "no-such-encoder")}, "MetaMMCDR")


def test_cross_domain_model_without_source_domain_is_refused(tiny_config):
    with pytest.raises(ConfigError, match="source_domain"):
        run_coldmeta(model="PTUPCDR", dataset="tiny", config_dict=tiny_config)


def test_predict_and_full_sort_agree(cdr_config):
    _, model, (_, _, test) = prepare(cdr_config, model="SSCDR")
    batch = test._dataset.inter_feat[:10]
    with torch.no_grad():
        row_scores = model.predict(batch)
        full = model.full_sort_predict(batch).view(10, -1)
    picked = full[torch.arange(10), batch["item_id"]]
    assert torch.allclose(row_scores, picked, atol=1e-5)


IMPLICIT = {
    "cdr_feedback": "implicit",
    "LABEL_FIELD": "label",
    "history_min_rating": None,
    "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "alpha": 1.0,
                              "dynamic": False, "candidate_num": 0},
    "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "order": "RO", "group_by": "user",
                  "mode": "full"},
    "metrics": ["Recall", "NDCG"],
    "topk": [10],
    "valid_metric": "NDCG@10",
}  # fmt: skip


@pytest.mark.parametrize("model_name", MODELS)
def test_every_model_runs_on_implicit_feedback(cdr_config, model_name):
    config = {**cdr_config, **IMPLICIT, "load_col": {"inter": ["user_id", "item_id"]}}
    result = run_coldmeta(model=model_name, config_dict=config)
    assert set(result["test_result"]) == {"recall@10", "ndcg@10"}
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0


def test_implicit_training_sees_sampled_negatives(cdr_config):
    config = {**cdr_config, **IMPLICIT, "load_col": {"inter": ["user_id", "item_id"]}}
    config_obj, model, (train, valid, _) = prepare(config)
    trainer = get_trainer(config_obj["MODEL_TYPE"], "PTUPCDR")(config_obj, model)
    labels = []
    original = model.calculate_loss

    def spy(interaction):
        labels.append(interaction["label"].clone())
        return original(interaction)

    model.calculate_loss = spy
    trainer.fit(train, valid, saved=False)
    seen = torch.cat(labels)
    assert set(seen.tolist()) == {0.0, 1.0}
    assert float(seen.mean()) == pytest.approx(0.5)


def test_implicit_without_negative_sampling_is_refused(cdr_config):
    config = {**cdr_config, **IMPLICIT, "train_neg_sample_args": None}
    with pytest.raises(ConfigError, match="sampled negatives"):
        prepare(config)


def test_biases_are_optional_and_start_cold_users_at_the_item_bias(cdr_config):
    _, plain, _ = prepare(cdr_config)
    assert plain.target_model.item_bias is None
    _, biased, (_, _, test) = prepare({**cdr_config, "use_bias": True})
    with torch.no_grad():
        biased.target_model.item_bias.weight.fill_(0.5)
        biased.target_model.global_bias.fill_(3.0)
        batch = test._dataset.inter_feat[:4]
        users = biased.user_vectors(batch["user_id"])
        dot = (users * biased.target_model.item(batch["item_id"])).sum(dim=1)
        assert torch.allclose(biased.predict(batch), dot + 3.5)


def test_gmf_base_model_scores_through_its_output_layer(cdr_config):
    _, model, (_, _, test) = prepare({**cdr_config, "base_model": "GMF"})
    assert model.target_model.output is not None
    result = run_coldmeta(model="PTUPCDR", config_dict={**cdr_config, "base_model": "GMF"})
    assert math.isfinite(result["test_result"]["mae"])


def test_pretrain_refit_trains_again_on_every_row_for_the_selected_epochs(cdr_config):
    config_obj, model, (train, valid, _) = prepare({**cdr_config, "pretrain_refit": True})
    trainer = get_trainer(config_obj["MODEL_TYPE"], "PTUPCDR")(config_obj, model)
    fits = []
    original = trainer.phase_trainer

    def record(phase, settings, base_config, progress):
        phase_trainer = original(phase, settings, base_config, progress)
        fit = phase_trainer.fit

        def recorded_fit(train_data, valid_data=None, *args, **kwargs):
            fits.append((phase, len(train_data.dataset), valid_data is None, phase_trainer.epochs))
            return fit(train_data, valid_data, *args, **kwargs)

        phase_trainer.fit = recorded_fit
        return phase_trainer

    trainer.phase_trainer = record
    trainer.fit(train, valid, saved=True)
    for phase in (Phase.SOURCE_PRETRAIN, Phase.TARGET_PRETRAIN):
        selected, refit = [entry for entry in fits if entry[0] == phase]
        part, held_out = train.dataset.phase_data[phase]
        assert selected[1:3] == (len(part), False)  # early-stopped on the held-out rows
        assert refit[1:3] == (len(part) + len(held_out), True)  # then every row, no selection
        assert 1 <= refit[3] <= selected[3]
    bridge = fits[-1]
    assert bridge[0] == Phase.BRIDGE  # on its own rows (training overlap users), selected on valid
    assert bridge[1:3] == (len(train.dataset.phase_data[Phase.BRIDGE][0]), False)
    assert len(train.dataset.phase_data[Phase.BRIDGE][0]) < len(train.dataset)
