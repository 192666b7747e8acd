"""The MeLU parity harness without the authors' code: the export is our split row for row, the
meta-training cut follows their rule under a seed, and the torch-1.1 style value copy leaves
autograd's version counters alone (the adaptation that lets their code run)."""

import pytest
import torch

from recbole_coldmeta.benchmarks.parity import melu, melu_official
from recbole_coldmeta.benchmarks.parity.melu_export import export_melu_split, read_tasks
from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.utils.enums import Role


@pytest.fixture
def exported(tiny_config, tmp_path):
    config = build_config("MeLU", None, config_dict=tiny_config)
    train, valid, test = data_preparation(config, create_dataset(config))
    parts = (train.dataset, valid.dataset, test.dataset)
    summary = export_melu_split(*parts, tmp_path / "export")
    return parts, summary, read_tasks(tmp_path / "export")


def test_the_export_holds_every_row_of_our_split_with_its_role(exported):
    parts, summary, tasks = exported
    for part in parts:
        users = part.id2token(part.uid_field, part.inter_feat[part.uid_field])
        items = part.id2token(part.iid_field, part.inter_feat[part.iid_field])
        ratings = part.inter_feat["rating"].round().long().tolist()
        for user, item, rating, role in zip(users, items, ratings, part.cold_roles.tolist()):
            assert (item, rating) in tasks[Role(role).name][user]
    assert sum(summary["rows"].values()) == sum(len(p.inter_feat) for p in parts)
    info = summary["split_info"]
    assert summary["users"]["META_TRAIN"] == info["meta_train_users"]
    assert summary["users"]["VALID_QUERY"] == info["valid_users"]
    assert summary["users"]["TEST_QUERY"] == info["test_users"]
    assert set(tasks["TEST_SUPPORT"]) == set(tasks["TEST_QUERY"])


def test_meta_training_tasks_are_cut_once_by_their_rule_under_the_seed(exported):
    _, _, tasks = exported
    cut = melu_official.meta_train_cut(tasks["META_TRAIN"], seed=7)
    assert cut == melu_official.meta_train_cut(tasks["META_TRAIN"], seed=7)
    assert cut != melu_official.meta_train_cut(tasks["META_TRAIN"], seed=8)
    for user, support, query in cut:
        assert len(query) == melu_official.QUERY_SIZE
        assert sorted(support + query) == sorted(tasks["META_TRAIN"][user])


def test_the_value_copy_keeps_a_backward_pass_through_copied_weights_alive():
    layer = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    original = {k: v.clone() for k, v in layer.state_dict().items()}
    fast = {k: v + 0.1 for k, v in original.items()}
    melu_official.load_values(layer, fast)
    loss = layer(torch.ones(2, 3)).sum()
    melu_official.load_values(layer, original)  # their forward restores the kept weights
    loss.backward()  # torch's own load_state_dict would fail here ("modified by an inplace")
    assert torch.equal(layer[1].weight.detach(), original["1.weight"])
    assert layer[0].weight.grad is not None
    with pytest.raises(RuntimeError, match="inplace"):
        loss = layer(torch.ones(2, 3)).sum()
        layer.load_state_dict(fast)
        loss.backward()


def test_a_folder_that_is_not_their_checkout_is_one_clear_error(tmp_path, capsys):
    code = melu.main([f"--authors_code={tmp_path}", "--raw_dir", str(tmp_path)])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "hoyeoplee/MeLU" in error[0] and "MeLU.py" in error[0]


def test_their_configuration_is_what_our_configured_as_theirs_run_sets():
    # options.py of hoyeoplee/MeLU: lr 5e-5, local_lr 5e-6, inner 1, batch_size 32, 20 epochs
    theirs = melu.THEIRS
    assert (theirs["learning_rate"], theirs["local_lr"], theirs["local_steps"]) == (5e-5, 5e-6, 1)
    assert (theirs["task_batch_size"], theirs["epochs"]) == (32, 20)
    assert theirs["use_item_id"] is False
