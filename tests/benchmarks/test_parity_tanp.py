"""The TaNP parity harness without the authors' code: the export rebuilt as their one-hot input is
our split row for row, the meta-training cut follows their rule under a seed, their epoch is
chosen on our validation users (a fake checkout stands in for theirs), evaluation leaves their
training's random stream alone, and a bad checkout is one error line."""

import sys

import pytest
import torch

from recbole_coldmeta.benchmarks.parity import tanp, tanp_official
from recbole_coldmeta.benchmarks.parity.melu_export import export_melu_split, read_tasks
from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.utils import DataError
from recbole_coldmeta.utils.enums import Role

#: IIEdm/TaNP's train.sh, as far as the harness reads it (their values).
TRAIN_SH = """first_embedding_dim=32
second_embedding_dim=16
z1_dim=32
z2_dim=32
z_dim=32
enc_h1_dim=32
enc_h2_dim=16
taskenc_h1_dim=32
taskenc_h2_dim=32
taskenc_final_dim=16
clusters_k=10
temperature=1.0
lambda=1.0
dec_h1_dim=32
dec_h2_dim=32
dec_h3_dim=16
dropout_rate=0
lr=0.0001
optim='adam'
num_epoch=100
batch_size=32
support_size=20
query_size=10
context_min=20
CUDA_VISIBLE_DEVICES=0 python train_TaNP.py \\
 --lr $lr
"""
#: A stand-in for their TaNP.py: the ``Trainer`` interface the harness drives. It checks the
#: batches it is given (full, their one-hot rows), and its ``np`` predicts PREDICTIONS[e] after
#: training epoch e (NaN when called in training mode).
FAKE_TANP = """import torch

PREDICTIONS = [1.0, 3.0, 5.0, 2.0]


class Trainer(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.opt = config
        self.updates, self.seen = 0, []
        self.np = self.predict

    def global_update(self, support_set_xs, support_set_ys, query_set_xs, query_set_ys):
        assert self.training and len(support_set_xs) == self.opt["batch_size"]
        width = self.opt["if_dim"] + self.opt["uf_dim"]
        for x in support_set_xs + query_set_xs:
            assert x.dtype == torch.long and x.shape[1] == width and (x.sum(1) == 2).all()
        self.updates += 1

    def predict(self, x_context, y_context, x_target, y_target):
        if not self.seen or self.seen[-1] != self.updates:
            self.seen.append(self.updates)
        value = float("nan") if self.training else PREDICTIONS[len(self.seen) - 1]
        return torch.full((len(x_target), 1), value)
"""


def fake_checkout(folder, train_sh=TRAIN_SH):
    folder.mkdir()
    (folder / "TaNP.py").write_text(FAKE_TANP)
    (folder / "embeddings_TaNP.py").write_text("")
    (folder / "train.sh").write_text(train_sh)
    return folder


@pytest.fixture
def their_module():
    """Their module names, imported from a checkout during a test, are gone after it."""
    path = list(sys.path)
    yield
    sys.path[:] = path
    for name in ("TaNP", "embeddings_TaNP"):
        sys.modules.pop(name, None)


@pytest.fixture
def exported(tiny_config, tmp_path):
    config = build_config("TaNP", "tiny", config_dict=tiny_config)
    train, valid, test = data_preparation(config, create_dataset(config))
    parts = (train.dataset, valid.dataset, test.dataset)
    export_melu_split(*parts, tmp_path / "export")
    return parts, tmp_path / "export"


def test_their_one_hot_rows_are_the_item_then_the_user():
    tasks = tanp_official.OneHotTasks(items={"i3", "i10", "i7"}, users={"u2", "u1"})
    assert tasks.dims == (3, 2)
    x = tasks.x("u2", [("i7", 4), ("i10", 1)])
    # items sorted: i10, i3, i7; users sorted: u1, u2
    assert x.dtype == torch.long
    assert x.tolist() == [[0, 0, 1, 0, 1], [1, 0, 0, 0, 1]]
    assert tasks.y([("i7", 4), ("i10", 1)]).tolist() == [4.0, 1.0]


def test_the_one_hot_export_is_our_split_row_for_row(exported):
    parts, folder = exported
    rows = read_tasks(folder)
    tasks = tanp_official.OneHotTasks.of(rows)
    items = sorted(tasks.item_index)
    users = sorted(tasks.user_index)
    n_items = tasks.dims[0]
    rebuilt = {}
    for role, of_user in rows.items():
        for user, task in of_user.items():
            x, y = tasks.x(user, task), tasks.y(task)
            assert (x.sum(dim=1) == 2).all()
            for item_part, user_part, rating in zip(x[:, :n_items], x[:, n_items:], y.tolist()):
                key = (role, users[int(user_part.argmax())])
                rebuilt.setdefault(key, []).append((items[int(item_part.argmax())], int(rating)))
    ours = {}
    for part in parts:
        inter = part.inter_feat
        part_users = part.id2token(part.uid_field, inter[part.uid_field]).tolist()
        part_items = part.id2token(part.iid_field, inter[part.iid_field]).tolist()
        ratings = inter["rating"].round().long().tolist()
        for user, item, rating, role in zip(part_users, part_items, ratings, part.cold_roles):
            ours.setdefault((Role(int(role)).name, user), []).append((item, rating))
    assert rebuilt == ours
    assert set(tasks.user_index) == {user for _, user in ours}


def test_meta_training_tasks_are_cut_by_their_rule_under_the_seed(exported):
    _, folder = exported
    rows = read_tasks(folder)["META_TRAIN"]
    cut, left_out = tanp_official.meta_train_cut(rows, support_size=12, minimum=18, seed=7)
    assert (cut, left_out) == tanp_official.meta_train_cut(rows, 12, 18, seed=7)
    assert cut != tanp_official.meta_train_cut(rows, 12, 18, seed=8)[0]
    assert left_out == sum(len(task) <= 18 for task in rows.values()) > 0
    assert len(cut) + left_out == len(rows)
    for user, support, query in cut:
        assert len(support) == 12 and len(query) == len(rows[user]) - 12 > 0
        assert sorted(support + query) == sorted(rows[user])


def test_their_epoch_is_chosen_on_our_validation_users(exported, tmp_path, their_module):
    _, folder = exported
    checkout = fake_checkout(
        tmp_path / "checkout", TRAIN_SH.replace("batch_size=32", "batch_size=8")
    )
    result = tanp_official.run_official(str(checkout), str(folder), seed=3, epochs=4)
    curve = result["curve"]
    assert len(curve) == 4 and result["epochs"] == 4
    best = min(range(4), key=lambda epoch: curve[epoch]["valid_mae"])
    assert best == 1  # predictions 1, 3, 5, 2: 3 is closest to ratings centred near 3.5
    assert result["selected"] == {"epoch": 2, **curve[1]}
    assert result["last"] == {"epoch": 4, **curve[3]}
    ratings = [r for rows in read_tasks(folder)["TEST_QUERY"].values() for _, r in rows]
    assert curve[1]["test_mae"] == pytest.approx(sum(abs(3.0 - r) for r in ratings) / len(ratings))
    assert result["config"]["lr"] == 1e-4 and result["config"]["batch_size"] == 8


def test_start_at_mean_sets_their_output_bias_to_the_training_rows_mean():
    trainer = torch.nn.Module()
    trainer.np = torch.nn.Module()
    trainer.np.xz_to_y = torch.nn.Module()
    trainer.np.xz_to_y.final_projection = torch.nn.Linear(3, 1)
    training = [("u1", [("i1", 5), ("i2", 4)], [("i3", 1)]), ("u2", [("i1", 2)], [])]
    assert tanp_official.start_at_mean(trainer, training) == 3.0
    assert trainer.np.xz_to_y.final_projection.bias.tolist() == [3.0]


def test_the_table_has_their_chosen_epochs_and_refuses_another_split():
    split = {"meta_train_users": 4, "valid_users": 1, "test_users": 1}
    point = {"valid_mae": 0.9, "test_mae": 0.8, "test_rmse": 1.0}
    official = {"selected": {"epoch": 7, **point}, "last": {"epoch": 9, **point}, "epochs": 9}
    ours = {"split": split, "test_result": {"mae": 0.7, "rmse": 0.9}}
    results = {1: {"official": official, "ours-tanp": ours}}
    rows = dict(tanp.collect(results, {1: {"split_info": split}}, [1]))
    label = "official TaNP (their code and train.sh); epoch 7 of 9 chosen on validation"
    assert rows[label] == {1: {"mae": 0.8, "rmse": 1.0, "best_test_mae": 0.8}}
    assert rows["ours TaNP (our defaults)"] == {1: {"mae": 0.7, "rmse": 0.9}}
    with pytest.raises(DataError, match="ours-tanp, seed 1: its split"):
        tanp.collect(results, {1: {"split_info": {**split, "test_users": 2}}}, [1])


def test_evaluation_leaves_their_random_stream_alone(exported):
    _, folder = exported
    rows = read_tasks(folder)
    tasks = tanp_official.OneHotTasks.of(rows)

    class Drawing(torch.nn.Module):
        def np(self, x_context, y_context, x_target, y_target):
            return torch.randn(len(x_target), 1)  # their NP draws z at evaluation

    torch.manual_seed(0)
    state = torch.get_rng_state()
    mae, rmse = tanp_official.evaluate(Drawing(), tasks, rows["TEST_SUPPORT"], rows["TEST_QUERY"])
    assert torch.equal(torch.get_rng_state(), state)
    assert 0 < mae < rmse


def test_our_configured_as_theirs_run_takes_their_train_sh(tmp_path, tiny_config):
    their = tanp_official.their_config(str(fake_checkout(tmp_path / "checkout")))
    theirs = tanp.theirs_as_ours(their, epochs=30)
    assert (theirs["learning_rate"], theirs["task_batch_size"], theirs["n_clusters"]) == (
        1e-4,
        32,
        10,
    )
    assert theirs["decoder_hidden_sizes"] == [32, 32, 16] and theirs["latent_size"] == 32
    assert (theirs["lambda_cluster"], theirs["cluster_temperature"]) == (1.0, 1.0)
    assert (theirs["epochs"], theirs["stopping_step"], theirs["user_fields"]) == (30, 30, [])
    config = build_config(
        "TaNP", "tiny", config_dict={**tiny_config, **theirs}
    )  # every key is ours
    assert config["task_size"] == 16 and config["use_item_id"] is True
    with pytest.raises(ValueError, match="z1_dim, z2_dim, z_dim = 16, 32, 32"):
        tanp.theirs_as_ours({**their, "z1_dim": 16}, epochs=30)


@pytest.mark.parametrize("files", [None, ["TaNP.py"], "no lr"])
def test_a_missing_or_wrong_authors_code_is_one_error_line(tmp_path, capsys, files):
    path = tmp_path / "checkout"
    if files == "no lr":
        fake_checkout(path, TRAIN_SH.replace("lr=0.0001\n", ""))
    elif files is not None:
        path.mkdir()
        for name in files:
            (path / name).write_text("")
    assert tanp.main([f"--authors_code={path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    if files is None:
        assert "is not a folder" in err and "IIEdm/TaNP" in err
    elif files == "no lr":
        assert "train.sh sets no lr:" in err
    else:
        assert "has no embeddings_TaNP.py, train.sh" in err and "IIEdm/TaNP" in err
