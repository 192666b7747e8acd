"""One route for support data: evaluation batches carry each cold user's support rows, models keep
no support tables, and a trained model evaluates another split by swapping loaders."""

import pytest
import torch

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.data.dataloader.support import limit_support
from recbole_coldmeta.data.user_rows import UserRows
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.quick_start.quick_start import build_model_and_trainer, evaluate_on_state
from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.enums import Role


def _prepare(model, dataset, config_dict):
    config = build_config(model, dataset, config_dict=config_dict)
    return config, data_preparation(config, create_dataset(config))


def test_every_evaluation_batch_carries_its_users_support_rows(tiny_config):
    _, (train, valid, test) = _prepare("MeLU", "tiny", tiny_config)
    inter = train.dataset.inter_feat
    roles = train.dataset.cold_roles
    for loader, role in ((valid, Role.VALID_SUPPORT), (test, Role.TEST_SUPPORT)):
        batches = list(loader)
        assert batches
        for batch in batches:
            interaction = batch[0]
            width = interaction["support_item"].shape[1]
            for row, user in enumerate(interaction["user_id"].tolist()):
                rows = torch.nonzero((inter["user_id"] == user) & (roles == role)).squeeze(1)
                mask = interaction["support_mask"][row]
                assert int(mask.sum()) == len(rows) > 0
                assert (
                    interaction["support_item"][row][mask].tolist()
                    == inter["item_id"][rows].tolist()
                )
                assert (
                    interaction["support_label"][row][mask].tolist()
                    == inter["rating"][rows].tolist()
                )
                assert not interaction["support_item"][row][~mask].any()  # padding is 0
            assert width == loader.support.fields["support_item"].shape[1]  # the split's widest


def test_models_that_do_not_adapt_get_plain_batches(tiny_config):
    _, (_, _, test) = _prepare("UserItemBias", "tiny", tiny_config)
    interaction = next(iter(test))[0]
    assert not [field for field in interaction.columns if field.startswith("support_")]


@pytest.mark.parametrize("model", ["MeLU", "CCML"])
def test_no_model_keeps_support_tables_and_a_batch_without_support_is_refused(model, tiny_config):
    overrides = {"n_similar": 5, "n_negative": 10, "n_beneficial": 3, "pool_size": 20}
    config, (train, _, test) = _prepare(model, "tiny", {**tiny_config, **overrides})
    built, _ = build_model_and_trainer(config, train.dataset)
    assert not [name for name, _ in built.named_buffers() if "support" in name]
    with pytest.raises(ConfigError, match="support rows"):
        built.predict(test.dataset.inter_feat[:5])


def test_user_rows_groups_rows_by_user_in_row_order():
    rows = torch.tensor([10, 11, 12, 13, 14, 15])
    users = torch.tensor([3, 1, 3, 1, 1, 4])
    index = UserRows(rows, users)
    assert index.users.tolist() == [1, 3, 4] and index.counts.tolist() == [3, 2, 1]
    padded, mask = index.padded()
    assert padded.tolist() == [[11, 13, 14], [10, 12, 0], [15, 0, 0]]
    by_id, by_id_mask = index.padded(num_users=5)
    assert by_id[3].tolist() == [10, 12, 0] and not by_id_mask[0].any() and by_id_mask[1].all()
    part = index.subset(index.counts > 1)
    assert part.users.tolist() == [1, 3] and part.padded()[0].tolist() == [
        [11, 13, 14],
        [10, 12, 0],
    ]


def test_a_trained_model_evaluates_another_state_by_swapping_its_test_loader(states_config):
    # the global-mean prior: the bias prior's item statistics are data, not parameters; a model
    # trained once keeps its training split's (TaskPriorMixin's NOTE), a rebuilt one takes the
    # state's, so only parameter-only models are expected to agree
    states_config = {**states_config, "prior": "global_mean"}
    config, (train, valid, _) = _prepare("MeLU", "states", {**states_config, "epochs": 1})
    model, trainer = build_model_and_trainer(config, train.dataset)
    trainer.fit(train, valid, saved=False)
    swapped, _, _ = evaluate_on_state(config, trainer, "test_b")
    # the same parameters in a model built on that state's own split give the same metrics
    state_config, (state_train, _, state_test) = _prepare(
        "MeLU", "states", {**states_config, "epochs": 1, "test_state": "test_b"}
    )
    _, rebuilt = build_model_and_trainer(state_config, state_train.dataset, model.state_dict())
    assert rebuilt.evaluate(state_test, load_best_model=False) == swapped


@pytest.fixture(scope="module")
def reversed_config(tiny_data_path, tmp_path_factory):
    """``tiny``'s interactions in reverse file order (newest first): the first rows by time are
    then not the first rows of the file."""
    folder = tmp_path_factory.mktemp("reversed")
    (folder / "reversed").mkdir()
    header, *rows = open(f"{tiny_data_path}/tiny/tiny.inter").read().splitlines()
    (folder / "reversed" / "reversed.inter").write_text("\n".join([header, *rows[::-1]]) + "\n")
    return {"data_path": str(folder), "load_col": None, "epochs": 1, "state": "WARNING"}


def _first_by_time(train, user, shots):
    """The items of ``user``'s first ``shots`` support rows by timestamp (ties: row order)."""
    inter = train.inter_feat
    rows = torch.nonzero((inter["user_id"] == user) & (train.cold_roles != Role.META_TRAIN))
    rows = rows.squeeze(1)
    order = torch.argsort(inter["timestamp"][rows].double(), stable=True)
    return sorted(inter["item_id"][rows[order[:shots]]].tolist())


@pytest.mark.parametrize("shots", [0, 1, 4])
def test_a_support_limit_carries_each_users_first_k_rows_by_time(shots, reversed_config):
    _, (train, _, test) = _prepare("MeLU", "reversed", reversed_config)
    full = [batch[0] for batch in test]
    with test.support_limit(shots):
        cut = [batch[0] for batch in test]
    assert test.support.shot.shape == test.support.fields["support_mask"].shape  # restored
    checked = 0
    for whole, part in zip(full, cut):
        assert part["support_item"].shape == whole["support_item"].shape  # same width S
        for row, user in enumerate(part["user_id"].tolist()):
            mask = part["support_mask"][row]
            size = int(whole["support_mask"][row].sum())
            assert int(mask.sum()) == min(shots, size)
            assert sorted(part["support_item"][row][mask].tolist()) == _first_by_time(
                train.dataset, user, shots
            )
            assert not part["support_item"][row][~mask].any()
            assert not part["support_label"][row][~mask].any()
            checked += 1
    assert checked == len(test.dataset)
    # the support of a user who has at most K rows is the table's own, bit for bit
    table = test.support
    for name, field in table.limited(int(table.sizes().max())).fields.items():
        assert torch.equal(field, table.fields[name]), name


def test_limit_support_keeps_the_first_k_support_rows_of_each_cold_user(reversed_config):
    _, (train, _, _) = _prepare("UserItemBias", "reversed", reversed_config)
    whole = train.dataset
    part = limit_support(whole, 3)
    meta = whole.cold_roles == Role.META_TRAIN
    assert int((part.cold_roles == Role.META_TRAIN).sum()) == int(meta.sum())
    assert len(part.cold_roles) == len(part.inter_feat)
    cold_users = torch.unique(whole.inter_feat["user_id"][~meta])
    for user in cold_users.tolist():
        rows = (part.inter_feat["user_id"] == user) & (part.cold_roles != Role.META_TRAIN)
        assert sorted(part.inter_feat["item_id"][rows].tolist()) == _first_by_time(whole, user, 3)
    assert len(limit_support(whole, 0).inter_feat) == int(meta.sum())


def test_a_support_limit_keeps_the_negatives_of_the_kept_rows(reversed_config):
    overrides = {"meta_feedback": "implicit", "task_neg_sample_num": 2}
    _, (_, _, test) = _prepare("MeLU", "reversed", {**reversed_config, **overrides})
    table = test.support
    cut = table.limited(3)
    kept = cut.fields["support_mask"].repeat_interleave(2, dim=1)  # [n_users, S * 2]
    assert torch.equal(cut.fields["support_neg_mask"], kept)
    assert torch.equal(cut.fields["support_neg_item"][kept], table.fields["support_neg_item"][kept])
    assert not cut.fields["support_neg_item"][~kept].any()
    assert int(cut.fields["support_mask"].sum(dim=1).max()) == 3
