"""The MAMO parity harness without the authors' code: their ML-1M encoding of our features, their
per-user tensors rebuilt from the export are our split row for row, their epoch is chosen on our
validation users (a fake checkout stands in for theirs), evaluation leaves their training's state
and random stream alone, and a bad checkout or dataset folder is one error line."""

import os
import sys

import pytest
import torch

from recbole_coldmeta.benchmarks.parity import mamo, mamo_input, mamo_official
from recbole_coldmeta.benchmarks.parity.melu_export import export_melu_split, read_tasks
from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.utils import DataError
from recbole_coldmeta.utils.enums import Role

#: Stand-ins for their files: the names the harness reaches, each doing the least that lets a
#: test see what the harness did. Their values where the harness reads values (configs.py).
GENRES = ["Action", "Animation", "Comedy", "Documentary", "Drama", "Horror", "Romance",
          "Thriller", "Family", "nan"]  # fmt: skip
FAKE = {
    "configs.py": """config_settings = {
    'support_size': 15, 'query_size': 5, 'embedding_dim': 100, 'n_layer': 2, 'alpha': 0.5,
    'beta': 0.05, 'gamma': 0.1, 'rho': 0.01, 'lamda': 0.05, 'tao': 0.01, 'n_k': 3,
    'batch_size': 5, 'n_epoch': 3, 'n_inner_loop': 3, 'active_func': 'leaky_relu',
    'cuda_option': 'cuda:5'}
""",
    "utils.py": f"""config = {{'n_year': 81, 'n_genre': {len(GENRES)}, 'n_director': 3,
          'n_occupation': 21}}
default_info = {{'movielens': {{'n_y': 5, 'u_in_dim': 3, 'i_in_dim': 4}}}}


def grads_sum(raw, new):
    return [a + b for a, b in zip(raw, new)]
""",
    "prepare_data/prepareList.py": """def load_list(name):
    with open(name, encoding='utf-8') as f:
        return [line.strip() for line in f]


list_movieLens = {
    'list_age': [1, 18, 25, 35, 45, 50, 56], 'list_gender': ['M', 'F'],
    'list_occupation': list(range(0, 21)), 'list_genre': load_list('data_raw/ml-1m/List_genre.txt'),
    'list_rate': ['PG-13', 'UNRATED', 'NC-17', 'PG', 'G', 'R'],
    'list_director': load_list('data_raw/ml-1m/List_director.txt')}


def user_converting_ml(user_row, age_list, gender_list, occupation_list):
    return [gender_list.index(user_row.iat[0, 1]), age_list.index(user_row.iat[0, 2]),
            occupation_list.index(user_row.iat[0, 3])]
""",
    "modules/input_loading.py": """import torch


class MLUserLoading(torch.nn.Module):
    def __init__(self, embedding_dim):
        super().__init__()
        self.table = torch.nn.Embedding(21, 1)
        torch.nn.init.ones_(self.table.weight)

    def forward(self, x1):
        assert x1.dtype == torch.long and x1.shape == (1, 3)
        return self.table(x1).flatten(1)


class MLItemLoading(torch.nn.Module):
    def __init__(self, embedding_dim):
        super().__init__()
""",
    "modules/info_embedding.py": """import torch


class UserEmbedding(torch.nn.Module):
    def __init__(self, n_layer, in_dim, embedding_dim, activation):
        super().__init__()


ItemEmbedding = UserEmbedding
""",
    "modules/rec_model.py": """import torch


class RecMAM(torch.nn.Module):
    def __init__(self, embedding_dim, n_y, n_layer, activation):
        super().__init__()
""",
    # The model predicts the rating PREDICTIONS[e] after epoch e; its weight is set from phi
    # for every user, its bias only moves (their local Adam moves what phi does not hold).
    "models.py": """import torch

PREDICTIONS = [1, 3, 5, 2]
EPOCHS, BIASES, STARTS = [0], [], []


def load_user_info(user_id, dataset, support_size, query_size, device):
    raise AssertionError('the harness binds load_user_info to our split')


class BASEModel(torch.nn.Module):
    def __init__(self, x1_loading, x2_loading, user, item, rec):
        super().__init__()
        self.input_user_loading = x1_loading
        self.weight = torch.nn.Parameter(torch.zeros(2))
        self.bias = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x1, x2):
        assert x2.dtype == torch.long and len(x1) == len(x2)
        probabilities = torch.zeros(len(x2), 5)
        probabilities[:, PREDICTIONS[EPOCHS[0] - 1] - 1] = 1.0
        return probabilities

    def get_weights(self):
        return [self.weight.detach().clone()], [], []

    def get_zero_weights(self):
        return [torch.zeros(2)], [], []

    def init_weights(self, u, i, r):
        self.weight.data.copy_(u[0])

    def init_u_mem_weights(self, u, mu, tao, i, r):
        self.weight.data.copy_(u[0] - tao * mu[0])

    def init_ui_mem_weights(self, att_values, task_mem):
        task_mem.read_head(att_values)

    def get_ui_mem_weights(self):
        return [self.weight.detach().clone()]


class LOCALUpdate:
    def __init__(self, model, u_idx, dataset, sup_size, que_size, bt_size, n_loop, update_lr,
                 top_k, device):
        (self.s_x1, self.s_x2, self.s_y, _, self.q_x1, self.q_x2, self.q_y,
         _) = load_user_info(u_idx, dataset, sup_size, que_size, device)
        assert len(self.s_x2) == sup_size and len(self.q_x2) == que_size
        self.model = model

    def train(self):
        BIASES.append(float(self.model.bias.detach()))
        self.model.bias.data += 1.0
        return [torch.ones(2)], [], []

    def test(self):
        STARTS.append(float(self.model.weight[0].detach()))
        self.model.bias.data += 100.0


def maml_train(phi_u, phi_i, phi_r, u_grads, i_grads, r_grads, lr):
    EPOCHS[0] += 1
    return [p - lr * g for p, g in zip(phi_u, u_grads)], phi_i, phi_r
""",
    "modules/memories.py": """import torch


class FeatureMem:
    def __init__(self, n_k, u_emb_dim, base_model, device):
        self.p_memory = torch.zeros(n_k, 3)
        self.u_memory = [[torch.zeros(2)] for _ in range(n_k)]
        self.att_values = torch.zeros(n_k)

    def read_head(self, p_u, alpha, train=True):
        self.att_values = torch.softmax(torch.randn(len(self.p_memory)), 0)  # a new layer
        self.p_memory = self.p_memory + p_u.sum()  # their read writes it (autograd history)
        return [torch.ones(2)], self.att_values

    def write_head(self, u_grads, lr):
        self.u_memory = [[slot[0] + lr * u_grads[0]] for slot in self.u_memory]


class TaskMem:
    def __init__(self, n_k, emb_dim, device):
        self.memory_UI = torch.zeros(n_k, 2, 2)
        self.att_values = torch.zeros(n_k)

    def read_head(self, att_values):
        self.att_values = att_values
        return self.memory_UI.sum(0)

    def write_head(self, u_mui, lr):
        self.memory_UI = self.memory_UI + lr
""",
    "mamoRec.py": "",
    "data_raw/ml-1m/List_genre.txt": "\n".join(GENRES) + "\n",
    "data_raw/ml-1m/List_director.txt": "Ann Lee\nBo Ek\nCy Ma\n",
}
THEIR_NAMES = ("configs", "utils", "models", "modules", "prepare_data")


def fake_checkout(folder, replace=None):
    for name, text in {**FAKE, **(replace or {})}.items():
        os.makedirs(os.path.dirname(folder / name), exist_ok=True)
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def their_module():
    """Their module names, imported from a checkout during a test, are gone before and after."""

    def forget():
        for name in list(sys.modules):
            if name.split(".")[0] in THEIR_NAMES:
                del sys.modules[name]

    path = list(sys.path)
    forget()
    yield
    sys.path[:] = path
    forget()


@pytest.fixture
def exported(tiny_config, tmp_path):
    config = build_config("MAMO", "tiny", config_dict=tiny_config)
    train, valid, test = data_preparation(config, create_dataset(config))
    parts = (train.dataset, valid.dataset, test.dataset)
    export_melu_split(*parts, tmp_path / "export")
    return parts, tmp_path / "export", config["data_path"]


@pytest.fixture
def their(tmp_path, their_module):
    return mamo_official.import_authors(str(fake_checkout(tmp_path / "checkout")))


def test_ages_fall_in_the_ml1m_groups():
    starts = [1, 18, 25, 35, 45, 50, 56]
    ages = ["7", "17", "18", "24", "25", "49", "50", "55", "56", "73"]
    assert [mamo_input.age_group(age, starts) for age in ages] == [1, 1, 18, 18, 25, 45, 50, 50,
                                                                   56, 56]  # fmt: skip


def test_our_features_are_encoded_as_their_ml1m_loader_encodes_them(their):
    users = [{"user_id": "u1", "age": "24", "gender": "F", "occupation": "writer"},
             {"user_id": "u2", "age": "60", "gender": "M", "occupation": "artist"}]  # fmt: skip
    assert mamo_input.encode_users(users, their) == {"u1": [1, 1, 1], "u2": [0, 6, 0]}
    items = [
        {"item_id": "a", "release_year": "1995", "class": "Children's Comedy"},
        {"item_id": "b", "release_year": "1990", "class": "unknown"},
        {"item_id": "c", "release_year": "1995", "class": "Drama"},
    ]
    encoded = mamo_input.encode_items(items, their)
    width = 2 + len(GENRES) + 3
    assert all(len(row) == width for row in encoded.values())
    genres = {item: [GENRES[i] for i, bit in enumerate(row[2:-3]) if bit] for item, row in
              encoded.items()}  # fmt: skip
    assert genres == {"a": ["Comedy", "Family"], "b": ["nan"], "c": ["Drama"]}
    assert [row[:2] for row in encoded.values()] == [[1, 0], [1, 1], [1, 0]]  # UNRATED, year
    assert all(row[-3:] == [0, 0, 0] for row in encoded.values())  # no director
    with pytest.raises(ValueError, match="genre 'Noir' of item d is not in their List_genre"):
        mamo_input.encode_items([{"item_id": "d", "release_year": "1", "class": "Noir"}], their)
    their.utils.config["n_year"] = 1
    with pytest.raises(ValueError, match="2 release years; their MLItemLoading embeds 1"):
        mamo_input.encode_items(items, their)
    their.utils.config["n_occupation"] = 1
    with pytest.raises(ValueError, match="2 occupations; their MLUserLoading embeds 1"):
        mamo_input.encode_users(users, their)


def test_their_per_user_tensors_are_our_split_row_for_row(exported, their):
    parts, folder, data_path = exported
    users = mamo_input.encode_users(mamo_input.read_atomic(f"{data_path}/tiny.user"), their)
    items = mamo_input.encode_items(mamo_input.read_atomic(f"{data_path}/tiny.item"), their)
    rows = mamo_input.SplitRows(users, items)
    tasks = read_tasks(folder)
    rebuilt = {}
    for role in ("VALID", "TEST"):
        for user in tasks[f"{role}_QUERY"]:
            support, query = tasks[f"{role}_SUPPORT"][user], tasks[f"{role}_QUERY"][user]
            rows.tasks[(role, user)] = (user, support, query)
            s_x1, s_x2, s_y, s_y0, q_x1, q_x2, q_y, _ = rows(
                (role, user), "movielens", len(support), len(query), torch.device("cpu")
            )
            for name, x1, x2, y, part in (("SUPPORT", s_x1, s_x2, s_y, support),
                                          ("QUERY", q_x1, q_x2, q_y, query)):  # fmt: skip
                assert x1.dtype == x2.dtype == y.dtype == torch.long
                assert (x1 == torch.tensor(users[user])).all()
                assert [items[item] for item, _ in part] == x2.tolist()
                rebuilt[(f"{role}_{name}", user)] = [r + 1 for r in y.tolist()]
            assert not s_y0.any()
    ours = {}
    for part in parts:
        inter = part.inter_feat
        part_users = part.id2token(part.uid_field, inter[part.uid_field]).tolist()
        ratings = inter["rating"].round().long().tolist()
        for user, rating, role in zip(part_users, ratings, part.cold_roles.tolist()):
            if Role(role).name != "META_TRAIN":
                ours.setdefault((Role(role).name, user), []).append(rating)
    assert rebuilt == ours


def test_their_epoch_is_chosen_on_our_validation_users(exported, tmp_path, their_module):
    _, folder, data_path = exported
    checkout = fake_checkout(tmp_path / "checkout")
    result = mamo_official.run_official(str(checkout), str(folder), data_path, 3, 4, 5)
    models = sys.modules["models"]
    curve = result["curve"]
    assert len(curve) == 4 and result["epochs"] == 4 and result["users_per_epoch"] == 5
    best = min(range(4), key=lambda epoch: curve[epoch]["valid_mae"])
    assert best == 1  # predictions 1, 3, 5, 2: 3 is closest to ratings centred near 3.5
    assert result["selected"] == {"epoch": 2, **curve[1]}
    assert result["last"] == {"epoch": 4, **curve[3]}
    assert result["curve_memories"] == curve  # the fake predicts the same from either start
    ratings = [r for rows in read_tasks(folder)["TEST_QUERY"].values() for _, r in rows]
    assert curve[1]["test_mae"] == pytest.approx(sum(abs(3 - r) for r in ratings) / len(ratings))
    assert curve[1]["test_mae_expected"] == pytest.approx(curve[1]["test_mae"])
    assert result["training_tasks"] + result["meta_train_users_left_out"] == len(
        read_tasks(folder)["META_TRAIN"]
    )
    # 4 epochs of 5 users; the local updates of the users evaluated never carried over
    assert models.BIASES == [float(i) for i in range(20)]


def test_evaluation_starts_users_as_theirs_and_leaves_their_training_alone(exported, their):
    _, folder, data_path = exported
    users = mamo_input.encode_users(mamo_input.read_atomic(f"{data_path}/tiny.user"), their)
    items = mamo_input.encode_items(mamo_input.read_atomic(f"{data_path}/tiny.item"), their)
    rows = mamo_input.SplitRows(users, items)
    their.models.load_user_info = rows
    mamo = mamo_official.TheirMAMO(their, rows, dict(their.configs.config_settings))
    tasks = read_tasks(folder)
    keys = []
    for user, support, query in mamo_official.meta_train_cut(tasks["META_TRAIN"], 15, 15, 0)[0]:
        rows.tasks[("META_TRAIN", user)] = (user, support, query)
        keys.append(("META_TRAIN", user))
    mamo.train_epoch(keys[:3])
    memory = mamo.feature_mem
    assert memory.p_memory.grad_fn is None and not memory.att_values.requires_grad
    profile, bias = memory.p_memory.clone(), float(mamo.model.bias.detach())
    mamo.model.weight.data.fill_(7.0)  # the last trained user's adapted weights
    state = torch.get_rng_state()
    their.models.STARTS.clear()
    for memories in (False, True):
        mamo_official.evaluate(mamo, tasks["TEST_SUPPORT"], tasks["TEST_QUERY"], "TEST", memories)
    assert torch.equal(torch.get_rng_state(), state)
    assert float(mamo.model.bias.detach()) == bias  # their local updates moved it, put back
    assert torch.equal(memory.p_memory, profile)  # their reads wrote it, put back
    # their test starts at the current weights; their training at phi - tau * bias (1 here)
    phi = float(mamo.phi[0][0][0])
    n = len(tasks["TEST_QUERY"])
    assert their.models.STARTS == [7.0] * n + [pytest.approx(phi - 0.01)] * n


def test_the_table_has_both_starts_of_their_runs_and_refuses_another_split():
    split = {"meta_train_users": 4, "valid_users": 1, "test_users": 1}
    point = {"valid_mae": 0.9, "test_mae": 0.8, "test_rmse": 1.0}
    other = {"valid_mae": 0.9, "test_mae": 0.7, "test_rmse": 0.9}
    official = {"selected": {"epoch": 2, **point}, "last": {"epoch": 3, **point}, "epochs": 3}
    official.update(selected_memories={"epoch": 1, **other}, last_memories={"epoch": 3, **point})
    ours = {"split": split, "test_result": {"mae": 0.7, "rmse": 0.9}}
    results = {1: {"official": official, "ours-mamo": ours}}
    rows = dict(mamo.collect(results, {1: {"split_info": split}}, [1]))
    label = "official MAMO (their code and configs.py, 100 training users an epoch)"
    assert rows[f"{label}, as their test starts a user; epoch 2 of 3 chosen on validation"] == {
        1: {"mae": 0.8, "rmse": 1.0, "best_test_mae": 0.8}
    }
    memories = f"{label}, as their training starts a user (memories read at φ)"
    assert rows[f"{memories}; epoch 1 of 3 chosen on validation"] == {
        1: {"mae": 0.7, "rmse": 0.9, "best_test_mae": 0.8}
    }
    assert rows["ours MAMO (our defaults)"] == {1: {"mae": 0.7, "rmse": 0.9}}
    assert len(rows) == 2 * len(mamo.OFFICIAL) + len(mamo.OURS)
    with pytest.raises(DataError, match="ours-mamo, seed 1: its split"):
        mamo.collect(results, {1: {"split_info": {**split, "test_users": 2}}}, [1])


def test_our_configured_as_theirs_runs_take_their_configs(tmp_path, tiny_config):
    settings = mamo.their_settings(str(fake_checkout(tmp_path / "checkout")))
    theirs = mamo.theirs_as_ours(settings, epochs=10)
    assert (theirs["embedding_size"], theirs["memory_slots"], theirs["local_steps"]) == (100, 3, 3)
    assert (theirs["profile_memory_rate"], theirs["bias_memory_rate"]) == (0.5, 0.05)
    assert (theirs["task_memory_rate"], theirs["bias_scale"], theirs["local_lr"]) == (
        0.1, 0.01, 0.01)  # fmt: skip
    # their phi - 0.05 * (sum of 100 users' gradients): SGD at 5.0 on the mean of 100 tasks
    assert (theirs["learner"], theirs["task_batch_size"]) == ("sgd", 100)
    assert theirs["learning_rate"] == pytest.approx(5.0)
    assert theirs["first_order"] is True and theirs["use_item_id"] is False
    config = build_config("MAMO", "tiny", config_dict={**tiny_config, **theirs})  # keys are ours
    assert config["stopping_step"] == 10
    options = mamo.parse_args(["--authors_code=x", "--raw_dir=r", f"--output={tmp_path}/m.md"])
    jobs = mamo.plan_jobs(options, 7, str(tmp_path / "seed-7" / "data"), theirs)
    sgd, adam = (" ".join(jobs[key][0]) for key in ("ours-mamo-theirs", "ours-mamo-theirs-adam"))
    assert "--learner=sgd" in sgd and "--embedding_size=100" in adam
    assert "--learner" not in adam and "--learning_rate" not in adam
    assert "--users_per_epoch=0" in jobs["official-all-users"][0]
    assert "--epochs=10" in jobs["official-all-users"][0]
    assert not any(arg.startswith("--epochs") for arg in jobs["official"][0])  # their 3


@pytest.mark.parametrize("case", ["no folder", "not theirs", "no config_settings", "no user file"])
def test_a_missing_or_wrong_authors_code_or_dataset_is_one_error_line(tmp_path, capsys, case):
    path = tmp_path / "checkout"
    if case == "not theirs":
        path.mkdir()
        (path / "mamoRec.py").write_text("")
    elif case != "no folder":
        broken = {"configs.py": "settings = {}\n"} if case == "no config_settings" else {}
        fake_checkout(path, broken)
    (tmp_path / "ml-100k").mkdir()
    code = mamo.main([f"--authors_code={path}", f"--raw_dir={tmp_path / 'ml-100k'}"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    expected = {
        "no folder": "is not a folder",
        "not theirs": "has no models.py, utils.py",
        "no config_settings": "configs.py sets no config_settings",
        "no user file": "has no ml-100k.user",
    }[case]
    assert expected in err and ("dongmanqing/Code-for-MAMO" in err or case == "no user file")
