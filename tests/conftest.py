"""Shared fixtures: a tiny synthetic dataset and a per-test working directory.

RecBole writes ``log/``, ``log_tensorboard/`` and ``saved/`` into the working directory, so every
test runs inside its own temporary folder.
"""

import pytest

from recbole_coldmeta.data.synthetic import write_synthetic_cross_domain, write_synthetic_dataset


@pytest.fixture(autouse=True)
def _work_in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def tiny_data_path(tmp_path_factory):
    """data_path of the synthetic dataset ``tiny`` (60 users, 80 items, 15-30 ratings each)."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("data"), name="tiny")


@pytest.fixture
def tiny_config(tiny_data_path, tmp_path):
    """config_dict for a fast run on ``tiny``."""
    return {
        "data_path": tiny_data_path,
        "load_col": None,
        "epochs": 1,
        "show_progress": False,
        "checkpoint_dir": str(tmp_path / "saved"),
        "state": "WARNING",
    }


@pytest.fixture(scope="session")
def cdr_data_path(tmp_path_factory):
    """data_path of a small synthetic cross-domain pair ``cdr-s`` (source) / ``cdr-t`` (target)."""
    return write_synthetic_cross_domain(
        tmp_path_factory.mktemp("cdr"),
        source_name="cdr-s",
        target_name="cdr-t",
        n_users=120,
        n_items=(60, 50),
        inters_per_user=(5, 15),
    )


@pytest.fixture
def cdr_config(cdr_data_path, tmp_path):
    """config_dict for a fast cross-domain run on ``cdr-s`` -> ``cdr-t``."""
    return {
        "data_path": cdr_data_path,
        "source_domain": {"dataset": "cdr-s"},
        "target_domain": {"dataset": "cdr-t"},
        "load_col": {"inter": ["user_id", "item_id", "rating"]},
        "TIME_FIELD": None,
        "cold_user_ratio": 0.3,
        "epochs": 1,
        "show_progress": False,
        "checkpoint_dir": str(tmp_path / "saved"),
        "text_encoder": "tiny-random-bert",
        "text_cache_dir": str(tmp_path / "text_cache"),
        "state": "WARNING",
    }


@pytest.fixture(scope="session")
def states_data_path(tiny_data_path, tmp_path_factory):
    """data_path of ``states``: ``tiny`` with a ``state`` per interaction, MeLU-file style.

    Users 0, 5, 10, ... are new users of state ``test`` and 1, 6, 11, ... of ``test_b``; the
    other users' rows are ``train``, every 7th ``other``.
    """
    folder = tmp_path_factory.mktemp("states")
    (folder / "states").mkdir()
    source = open(f"{tiny_data_path}/tiny/tiny.inter").read().splitlines()
    lines = [source[0] + "\tstate:token"]
    for number, line in enumerate(source[1:]):
        user = int(line.split("\t")[0][1:])
        state = {0: "test", 1: "test_b"}.get(user % 5, "train" if number % 7 else "other")
        lines.append(f"{line}\t{state}")
    (folder / "states" / "states.inter").write_text("\n".join(lines) + "\n")
    return str(folder)


@pytest.fixture
def states_config(tiny_config, states_data_path):
    """config_dict for the precomputed-state split of ``states`` (test state ``test``)."""
    return {
        **tiny_config,
        "data_path": states_data_path,
        "user_split": "field",
        "split_field": "state",
        "train_states": ["train"],
        "test_state": "test",
        "query_size": 3,
        "user_inter_num_interval": "[0,inf)",
    }


@pytest.fixture(scope="session")
def late_data_path(tiny_data_path, tmp_path_factory):
    """data_path of ``late``: ``tiny`` with some rows moved after time 2e7 (all others are
    before 1.2e7): every row of users 50-59 (new users), every row of items 65-79 (new items),
    and every 4th row of users 0-29 (warm rows after the split)."""
    folder = tmp_path_factory.mktemp("late")
    (folder / "late").mkdir()
    source = open(f"{tiny_data_path}/tiny/tiny.inter").read().splitlines()
    lines = [source[0]]
    for number, line in enumerate(source[1:]):
        user, item, rating, time = line.split("\t")
        warm_late = int(user[1:]) < 30 and number % 4 == 0
        late = int(user[1:]) >= 50 or int(item[1:]) >= 65 or warm_late
        lines.append("\t".join([user, item, rating, str(float(time) + 2e7 * late)]))
    (folder / "late" / "late.inter").write_text("\n".join(lines) + "\n")
    return str(folder)


@pytest.fixture
def sequential_cold_config(tiny_config, tmp_path):
    """config_dict for a fast sequential cold-start run (MML's protocol) on ``tiny``: small
    layers, a tiny random text encoder, one epoch per training phase."""
    return {
        **tiny_config,
        "hidden_size": 16,
        "n_layers": 1,
        "inner_size": 32,
        "MAX_ITEM_LIST_LENGTH": 10,
        "task_batch_size": 16,
        "text_encoder": "tiny-random-bert",
        "text_cache_dir": str(tmp_path / "text_cache"),
        "item_text_fields": ["movie_title"],
        "train_phases": [
            {"phase": "learners", "epochs": 1},
            {"phase": "generator", "epochs": 1},
            {"phase": "fusion", "epochs": 1},
        ],
    }
