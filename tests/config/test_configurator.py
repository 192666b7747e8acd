"""Config layering, lookups and input checks."""

import pytest

from recbole_coldmeta.config import Config, parse_cmd_overrides
from recbole_coldmeta.utils import ConfigError, properties_dir


def test_default_dataset_is_bundled_ml100k():
    config = Config("BPR")
    assert config["dataset"] == "ml-100k"
    assert config["data_path"].replace("\\", "/").endswith("dataset_example/ml-100k")


def test_our_dataset_yaml_is_layered_over_recbole():
    config = Config("BPR", "ml-100k")
    assert config["load_col"]["user"] == ["user_id", "age", "gender", "occupation"]
    assert (properties_dir() / "dataset" / "ml-100k.yaml").is_file()


def test_precedence_file_dict_cmd(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("learning_rate: 0.1\nepochs: 3\ntrain_batch_size: 64\n")
    config = Config(
        "BPR",
        config_file_list=[str(file)],
        config_dict={"epochs": 4, "learning_rate": 0.2},
        cmd_args=["--learning_rate=0.3"],
    )
    assert config["train_batch_size"] == 64
    assert config["epochs"] == 4
    assert config["learning_rate"] == 0.3


def test_sys_argv_is_not_read(monkeypatch):
    monkeypatch.setattr("sys.argv", ["pytest", "--epochs=99"])
    assert Config("BPR")["epochs"] != 99


def test_sequential_ce_models_need_no_training_negatives():
    assert Config("SASRec")["train_neg_sample_args"]["distribution"] == "none"
    assert Config("BPR")["train_neg_sample_args"]["distribution"] == "uniform"


def test_unknown_key_is_an_error_unless_allowed(tmp_path):
    file = tmp_path / "typo.yaml"
    file.write_text("learning_rat: 0.1\n")
    with pytest.raises(ConfigError, match=r"learning_rat.*typo.yaml.*Did you mean 'learning_rate'"):
        Config("BPR", config_file_list=[str(file)])
    config = Config("BPR", config_dict={"my_key": 1, "allow_unknown_config_keys": True})
    assert config["my_key"] == 1


def test_config_file_must_be_a_mapping(tmp_path):
    file = tmp_path / "list.yaml"
    file.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        Config("BPR", config_file_list=[str(file)])


def test_parse_cmd_overrides():
    assert parse_cmd_overrides(["--a=1", "--b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError):
        parse_cmd_overrides(["--a=1", "--a=2"])
