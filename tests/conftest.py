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
