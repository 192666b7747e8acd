"""No untrained embedding is ever scored: ids that no training gradient reached get a defined
vector (``unseen_ids``), whatever their random initial row; trained ids keep their own."""

import pytest
import torch

from recbole_coldmeta.config import Config
from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.model.layers import TrainedIdEmbedding, unseen_id_settings
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.registry import get_model
from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.enums import Phase

MODES = ["mean", "learned"]


def _table(mode):
    settings = {"unseen_ids": mode, "unseen_id_dropout": 0.5, "seed": 0}
    return TrainedIdEmbedding(6, 4, **unseen_id_settings(settings))


def _train_step(model, loss):
    """One training step's backward (what marks ids as seen), then evaluation mode."""
    model.train()
    loss.backward()
    model.eval()


def _reinitialise(table, ids):
    with torch.no_grad():
        table.weight[ids] = torch.randn(len(ids), table.embedding_dim) * 3


@pytest.mark.parametrize("mode", MODES)
def test_only_rows_with_a_training_gradient_are_seen(mode):
    table = _table(mode)
    table.train()
    table(torch.tensor([1, 2, 2, 3, 1, 2, 3, 1])).sum().backward()
    trained = table.seen.nonzero().squeeze(1).tolist()
    assert trained and set(trained) <= {1, 2, 3}  # dropout may have hidden an id in learned
    table.eval()
    table(torch.tensor([4, 5])).sum().backward()  # evaluation marks nothing
    assert table.seen.nonzero().squeeze(1).tolist() == trained


@pytest.mark.parametrize("mode", MODES)
def test_an_unseen_id_ignores_its_row_and_a_seen_id_does_not(mode):
    table = _table(mode)
    _train_step(table, table(torch.tensor([1, 2, 3])).sum())
    seen, unseen = int(table.seen.nonzero()[0]), 5
    ids = torch.tensor([seen, unseen])
    before = table(ids).detach()
    _reinitialise(table, [unseen])
    torch.testing.assert_close(table(ids), before)
    _reinitialise(table, [seen])
    assert not torch.allclose(table(ids)[0], before[0])
    if mode == "mean":
        torch.testing.assert_close(table(ids)[1], table.weight[table.seen].mean(dim=0))


def test_learned_mode_trains_its_vector_and_needs_dropout():
    table = _table("learned")
    table.train()
    (table(torch.arange(6).repeat(10)) - 1).pow(2).sum().backward()
    assert table.unseen_vector.grad is not None and table.unseen_vector.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="unseen_id_dropout > 0"):
        unseen_id_settings({"unseen_ids": "learned", "unseen_id_dropout": 0, "seed": 0})
    with pytest.raises(ConfigError, match="unseen_ids='features'"):
        unseen_id_settings({"unseen_ids": "features", "unseen_id_dropout": 0.1, "seed": 0})


def _melu(tiny_config, model_name, mode, **overrides):
    config_dict = {**tiny_config, "unseen_ids": mode, **overrides}
    config = build_config(model_name, "tiny", config_dict=config_dict)
    train_data, _, test_data = data_preparation(config, create_dataset(config))
    torch.manual_seed(0)
    model = get_model(model_name)(config, train_data.dataset)
    return model, train_data, test_data


@pytest.mark.parametrize(
    ("model_name", "overrides"),
    [("MeLU", {}), ("CCML", {"n_similar": 2, "n_beneficial": 1, "n_negative": 2, "pool_size": 8})],
)
@pytest.mark.parametrize("mode", MODES)
def test_meta_learners_never_score_an_untrained_item_row(tiny_config, model_name, overrides, mode):
    model, train_data, test_data = _melu(tiny_config, model_name, mode, **overrides)
    _train_step(model, model.calculate_loss(next(iter(train_data))))  # one batch: few items
    table = model.item_embedder.id_table
    unseen = (~table.seen).nonzero().squeeze(1)
    seen = table.seen.nonzero().squeeze(1)
    assert len(unseen) > 1 and len(seen) > 0
    batch = next(iter(test_data))[0][:4]
    before = model.full_sort_predict(batch).view(-1, model.n_items)
    _reinitialise(table, unseen)
    torch.testing.assert_close(model.full_sort_predict(batch).view(-1, model.n_items), before)
    _reinitialise(table, seen)
    after = model.full_sort_predict(batch).view(-1, model.n_items)
    assert not torch.allclose(after[:, seen], before[:, seen])


def test_the_padding_token_is_zero_kept_and_outside_the_mean():
    keys = {"unseen_ids": "learned", "unseen_id_dropout": 0.99, "seed": 0}
    table = TrainedIdEmbedding(6, 4, **unseen_id_settings(keys), padding_idx=0)
    with torch.no_grad():
        table.weight[0] = 5.0  # what a model's normal_ init does to the padding row
    table.train()
    assert torch.equal(table(torch.zeros(50, dtype=torch.long)), torch.zeros(50, 4))  # no dropout
    _train_step(table, table(torch.tensor([0, 1, 2])).sum())
    assert torch.equal(table(torch.tensor([0])), torch.zeros(1, 4))
    keys = {**keys, "unseen_ids": "mean"}
    table = TrainedIdEmbedding(6, 4, **unseen_id_settings(keys), padding_idx=0)
    _train_step(table, table(torch.tensor([0, 1, 2])).sum())
    assert table.seen[1:3].all() and not table.seen[3:].any()
    torch.testing.assert_close(table.unseen_embedding(), table.weight[1:3].mean(dim=0))
    torch.testing.assert_close(table(torch.tensor([4]))[0], table.weight[1:3].mean(dim=0))


@pytest.mark.parametrize(
    ("model_name", "overrides"),
    [
        ("MeLU", {"use_item_id": False}),
        ("CCML", {"n_similar": 2, "n_beneficial": 1, "n_negative": 2, "pool_size": 8}),
        ("TaNP", {}),
        ("MAMO", {}),
    ],
)
def test_meta_learners_never_score_an_untrained_feature_token(tiny_config, model_name, overrides):
    """``tiny``'s zip codes are one per user, so a cold user's zip code (and a title token of an
    item no trained row has) was never trained: its random row must not reach the score."""
    model, train_data, test_data = _melu(tiny_config, model_name, "mean", **overrides)
    _train_step(model, model.calculate_loss(next(iter(train_data))))
    tables = [
        table
        for embedder in (model.user_embedder, model.item_embedder)
        for table in embedder.tables.values()
        if isinstance(table, TrainedIdEmbedding)
    ]
    zip_codes = model.user_embedder.tables["zip_code"]
    assert (~zip_codes.seen[1:]).sum() > 1 and zip_codes.seen.any()
    batch = next(iter(test_data))[0][:4]
    before = model.full_sort_predict(batch).view(-1, model.n_items)
    for table in tables:
        _reinitialise(table, (~table.seen).nonzero().squeeze(1))
    torch.testing.assert_close(model.full_sort_predict(batch).view(-1, model.n_items), before)
    for table in tables:
        _reinitialise(table, table.seen.nonzero().squeeze(1))
    assert not torch.allclose(model.full_sort_predict(batch).view(-1, model.n_items), before)


def test_the_seen_mask_travels_with_the_checkpoint(tiny_config):
    model, train_data, _ = _melu(tiny_config, "MeLU", "mean")
    _train_step(model, model.calculate_loss(next(iter(train_data))))
    state = model.state_dict()
    assert torch.equal(state["item_embedder.id_table.seen"], model.item_embedder.id_table.seen)
    fresh, _, _ = _melu(tiny_config, "MeLU", "mean")
    assert not fresh.item_embedder.id_table.seen.any()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.item_embedder.id_table.seen, model.item_embedder.id_table.seen)


@pytest.mark.parametrize("mode", MODES)
def test_cross_domain_target_items_without_training_gradient(cdr_config, mode):
    config_dict = {**cdr_config, "unseen_ids": mode, "use_bias": True}
    config = Config(model="PTUPCDR", config_dict=config_dict)
    train_data = data_preparation(config, create_dataset(config))[0]
    torch.manual_seed(0)
    model = get_model("PTUPCDR")(config, train_data.dataset)
    model.set_phase(Phase.TARGET_PRETRAIN)
    rows = train_data.dataset.inter_feat[:8]  # a few target training rows: few items trained
    optimizer = torch.optim.Adam(model.phase_parameters(Phase.TARGET_PRETRAIN), weight_decay=0.1)
    _train_step(model, model.calculate_loss(rows))
    optimizer.step()  # a never-trained bias stays at its initial 0
    table, bias = model.target_model.item, model.target_model.item_bias
    unseen = (~table.seen).nonzero().squeeze(1)
    seen = table.seen.nonzero().squeeze(1)
    assert len(unseen) > 1 and len(seen) > 0
    assert torch.equal(bias.weight[unseen], torch.zeros(len(unseen), 1))
    rows = rows[:3]
    before = model.full_sort_predict(rows).view(3, -1)
    _reinitialise(table, unseen)
    torch.testing.assert_close(model.full_sort_predict(rows).view(3, -1), before)
    _reinitialise(table, seen)
    assert not torch.allclose(model.full_sort_predict(rows).view(3, -1)[:, seen], before[:, seen])
    assert not model.source_model.user.seen.any()  # the source users' table is guarded too
