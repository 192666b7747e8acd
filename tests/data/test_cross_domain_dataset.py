"""The cross-domain split: user alignment, the held-out cold users, phase data and bad input."""

import shutil
from pathlib import Path

import pytest
import torch

from recbole_coldmeta.config import Config
from recbole_coldmeta.data import create_dataset
from recbole_coldmeta.data.dataset import CrossDomainDataset, Phase, Role
from recbole_coldmeta.utils import ConfigError, DataError


def build(config_dict, model="PTUPCDR"):
    config = Config(model=model, config_dict=config_dict)
    dataset = create_dataset(config)
    return dataset, dataset.build()


def raw_users(dataset, ids):
    return {dataset.field2id_token[dataset.uid_field][int(i)] for i in ids}


def test_target_domain_block_names_the_run_dataset(cdr_config):
    config = Config(model="PTUPCDR", config_dict=cdr_config)
    assert config["dataset"] == "cdr-t"
    assert config["user_inter_num_interval"] is None


def test_users_align_by_raw_token_and_items_stay_apart(cdr_config):
    dataset, _ = build(cdr_config)
    assert isinstance(dataset, CrossDomainDataset)
    source_tokens = dataset.source.field2id_token[dataset.source.uid_field]
    target_tokens = dataset.field2id_token[dataset.uid_field]
    for target_id, source_id in enumerate(dataset.source_user_of.tolist()):
        if source_id:
            assert source_tokens[source_id] == target_tokens[target_id]
        elif target_id:
            assert target_tokens[target_id] not in set(source_tokens)
    source_items = set(dataset.source.field2id_token[dataset.source.iid_field][1:])
    assert not source_items & set(dataset.field2id_token[dataset.iid_field][1:])


def test_cold_users_are_overlap_users_and_hidden_from_every_training_phase(cdr_config):
    dataset, (train, valid, test) = build(cdr_config)
    uid = dataset.uid_field
    overlap = int((dataset.source_user_of > 0).sum())
    test_users = set(test.inter_feat[uid].tolist())
    valid_users = set(valid.inter_feat[uid].tolist())
    assert len(test_users) == round(overlap * 0.3)
    assert valid_users and not valid_users & test_users
    assert all(dataset.source_user_of[u] > 0 for u in test_users | valid_users)
    held_out = test_users | valid_users
    assert not set(train.inter_feat[uid].tolist()) & held_out
    for phase in (Phase.TARGET_PRETRAIN, Phase.BRIDGE):
        phase_train = train.phase_data[phase][0]
        assert not set(phase_train.inter_feat[uid].tolist()) & held_out
    bridge_users = train.phase_data[Phase.BRIDGE][0].inter_feat[uid]
    assert bool((dataset.source_user_of[bridge_users] > 0).all())
    assert train.phase_data[Phase.BRIDGE][1] is valid
    # the source domain keeps the test users' source interactions: they are the cold users' input
    source_train = train.phase_data[Phase.SOURCE_PRETRAIN][0]
    source_users = raw_users(dataset.source, source_train.inter_feat[dataset.source.uid_field])
    assert raw_users(dataset, test_users) & source_users
    # every target interaction is in exactly one split
    assert len(train.inter_feat) + len(valid.inter_feat) + len(test.inter_feat) == len(
        dataset.inter_feat
    )
    assert set(test.cold_roles.tolist()) == {Role.TEST_QUERY}


def test_pretrain_holdout_partitions_each_domain(cdr_config):
    dataset, (train, _, _) = build(cdr_config)
    source_fit, source_held = train.phase_data[Phase.SOURCE_PRETRAIN]
    target_fit, target_held = train.phase_data[Phase.TARGET_PRETRAIN]
    assert len(source_fit.inter_feat) + len(source_held.inter_feat) == len(
        dataset.source.inter_feat
    )
    assert len(target_fit.inter_feat) + len(target_held.inter_feat) == len(train.inter_feat)
    assert len(target_held.inter_feat) == round(0.1 * len(train.inter_feat))


def test_same_seed_same_split_other_seed_other_split(cdr_config):
    def test_users(seed):
        _, (_, _, test) = build({**cdr_config, "seed": seed})
        return sorted(test.inter_feat["user_id"].tolist())

    assert test_users(3) == test_users(3)
    assert test_users(3) != test_users(4)


@pytest.mark.parametrize("beta", [0, 1, 1.5, -0.2])
def test_beta_outside_open_unit_interval_is_refused(cdr_config, beta):
    with pytest.raises(ConfigError, match="cold_user_ratio"):
        build({**cdr_config, "cold_user_ratio": beta})


def test_source_and_target_the_same_file_is_refused(cdr_config):
    with pytest.raises(ConfigError, match="same file"):
        build({**cdr_config, "source_domain": {"dataset": "cdr-t"}})


def test_source_domain_block_is_checked(cdr_config):
    with pytest.raises(ConfigError, match="mapping naming"):
        build({**cdr_config, "source_domain": {"USER_ID_FIELD": "user_id"}})
    with pytest.raises(ConfigError, match="USER_ID_FEILD"):
        build({**cdr_config, "source_domain": {"dataset": "cdr-s", "USER_ID_FEILD": "uid"}})


def test_target_domain_conflicting_with_top_level_is_refused(cdr_config):
    with pytest.raises(ConfigError, match="both at top level"):
        Config(model="PTUPCDR", config_dict={**cdr_config, "dataset": "other"})


def test_domains_without_common_users_name_the_problem(cdr_data_path, cdr_config, tmp_path):
    folder = tmp_path / "disjoint"
    shutil.copytree(Path(cdr_data_path) / "cdr-s", folder / "cdr-s")
    inter = folder / "cdr-s" / "cdr-s.inter"
    inter.write_text(inter.read_text().replace("\nu", "\nsource_only_u"))
    shutil.copytree(Path(cdr_data_path) / "cdr-t", folder / "cdr-t")
    with pytest.raises(DataError, match="no user in common"):
        build({**cdr_config, "data_path": str(folder)})


def test_source_with_its_own_field_names(cdr_data_path, cdr_config, tmp_path):
    folder = tmp_path / "renamed"
    shutil.copytree(Path(cdr_data_path) / "cdr-t", folder / "cdr-t")
    (folder / "cdr-s").mkdir()
    lines = (Path(cdr_data_path) / "cdr-s" / "cdr-s.inter").read_text().splitlines()
    lines[0] = "reader:token\tbook:token\tstars:float"
    (folder / "cdr-s" / "cdr-s.inter").write_text("\n".join(lines) + "\n")
    source_block = {
        "dataset": "cdr-s",
        "USER_ID_FIELD": "reader",
        "ITEM_ID_FIELD": "book",
        "RATING_FIELD": "stars",
        "LABEL_FIELD": "stars",
        "load_col": {"inter": ["reader", "book", "stars"]},
    }
    dataset, _ = build({**cdr_config, "data_path": str(folder), "source_domain": source_block})
    assert dataset.source.uid_field == "reader"
    assert int((dataset.source_user_of > 0).sum()) > 0


def test_split_info_counts(cdr_config):
    dataset, (train, valid, test) = build(cdr_config)
    info = train.split_info
    assert info["test_interactions"] == len(test.inter_feat)
    assert info["valid_users"] == len(torch.unique(valid.inter_feat["user_id"]))
    assert info["overlap_users"] == (
        info["train_overlap_users"] + info["valid_users"] + info["test_users"]
    )


def test_titled_items_only_filter_drops_source_items_without_text(cdr_config):
    source_block = {
        "dataset": "cdr-s",
        "load_col": {"inter": ["user_id", "item_id", "rating"], "item": ["item_id", "has_text"]},
        "val_interval": {"has_text": "[1,1]"},
    }
    dataset, _ = build({**cdr_config, "source_domain": source_block})
    everything, _ = build(cdr_config)
    kept = dataset.source.item_num - 1
    assert 0 < kept < everything.source.item_num - 1
    assert bool((dataset.source.item_feat["has_text"][1:] == 1).all())
    assert dataset.item_num == everything.item_num  # the target domain is untouched
