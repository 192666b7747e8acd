"""Params files and search-space checks: bad input fails before training, frozen split keys."""

import inspect
import math
import re

import pytest

import recbole_coldmeta.data.dataset.cold_start_dataset as cold_start_dataset
import recbole_coldmeta.data.dataset.cross_domain_dataset as cross_domain_dataset
from recbole_coldmeta.config import Config
from recbole_coldmeta.quick_start.hyper import (
    RUN_SPLIT_KEYS,
    SELECTION_KEYS,
    SPLIT_KEY_OWNERS,
    SPLIT_KEYS,
    check_search_space,
    default_params_file,
    frozen_keys,
    read_params_file,
    run_hyper,
)
from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.config_keys import ENTRY_POINT_KEYS, known_config_keys

#: The frozen keys as the tuner listed them by hand before the split classes declared theirs.
HAND_KEPT_FROZEN_KEYS = {
    # cold-start split and meta-training task cuts
    "cold_start_split",
    "user_split",
    "user_split_ratio",
    "split_time",
    "split_field",
    "train_states",
    "test_state",
    "task_size_interval",
    "support_mode",
    "support_size",
    "query_size",
    "new_user_max_inters",
    "split_file",  # a saved split (both splits read it)
    "raw_data_path",
    # cross-domain split
    "source_domain",
    "target_domain",
    "cold_user_ratio",
    "valid_user_ratio",
    "pretrain_valid_ratio",
    # run
    "model",
    "dataset",
    "data_path",
    "seed",
    "reproducibility",
    # data checks: which rows a dataset keeps
    "encoding",
    "drop_incomplete_rows",
    "duplicate_interactions",
    "rating_range",
    # scoring
    "eval_args",
    "metrics",
    "topk",
    "valid_metric",
    "valid_metric_bigger",
    "metric_decimal_place",
    "repeatable",
    "query_ndcg_k",
    "valid_neg_sample_args",
    "test_neg_sample_args",
}


@pytest.mark.parametrize(
    "text, kwargs, expected",
    [
        ("locl_lr choice [0.01]\n", {}, r"line 1: unknown config key 'locl_lr'.*'local_lr'"),
        ("n_layers choice [1,2]\n", {}, r"line 1: 'n_layers' is a config key, but MeLU"),
        ("local_lr choice []\n", {}, r"line 1: 'local_lr' has an empty choice list"),
        ("local_lr choice 0.1\n", {}, r"line 1: the options of 'local_lr' must be a Python list"),
        ("\nlocal_lr uniform 0.5,0.1\n", {"algo": "random"}, r"line 2: the range of 'local_lr'"),
        ("local_lr uniform 0 0.1\n", {"algo": "random"}, r"line 1: .* separated by commas"),
        ("local_lr quniform 1,5\n", {"algo": "random"}, r"line 1: 'local_lr quniform' takes 3"),
        ("local_lr choice\n", {}, r"line 1: cannot read 'local_lr choice'"),
        ("local_lr\tchoice\t[0.1]\n", {}, r"line 1: cannot read"),
        ("# tuned on ml-100k\n", {}, r"line 1: RecBole's params files have no comments"),
        ("local_lr normal 0 1\n", {}, r"line 1: unknown search type 'normal'"),
        ("local_lr choice [0.1]\nlocal_lr choice [0.2]\n", {}, r"line 2: .*already.*line 1"),
        ("support_size choice [5,10]\n", {}, r"line 1: 'support_size' decides the dataset"),
        ("user_split_ratio choice [[0.8,0.1,0.1]]\n", {}, r"'user_split_ratio' decides the"),
        ("seed choice [1,2]\n", {}, r"line 1: 'seed' decides the dataset or its split"),
        ("valid_metric choice ['RMSE']\n", {}, r"'valid_metric' decides how trials are scored"),
        ("local_lr uniform 0,0.1\n", {}, r"exhaustive search enumerates choice lines only"),
        (
            "local_lr choice [0.01,0.05]\n",
            {"cmd_args": ["--local_lr=0.1"]},
            r"also given as --local_lr on the command line",
        ),
        ("local_lr choice [0.01]\n", {"tool": "Ray", "algo": "bayes"}, r"bayes is Hyperopt's"),
        ("local_lr choice [0.01]\n", {"tool": "Spark"}, r"Unknown --tool=Spark"),
        ("local_lr choice [0.01]\n", {"algo": "grid"}, r"Unknown --algo=grid"),
        ("\n\n", {}, r"holds no search dimension"),
        # every value a trial can take goes through the key's declared type, range and choices
        ("learning_rate choice [0.01,-1]\n", {}, r"line 1: the option learning_rate=-1 must be"),
        ("epochs choice ['abc']\n", {}, r"line 1: the option epochs='abc' must be an integer"),
        ("meta_feedback choice ['implicite']\n", {}, r"'implicite' is not one of explicit"),
        (
            "\ndropout_prob uniform 0,1.5\n",
            {"algo": "random"},
            r"line 2: the uniform bound dropout_prob=1.5 must be a number >= 0 and < 1 \(MeLU",
        ),
        ("dropout_prob loguniform -3,0.5\n", {"algo": "random"}, r"bound dropout_prob=1.64"),
        ("epochs uniform 1,5\n", {"algo": "random"}, r"'epochs uniform' draws non-integers"),
    ],
)
def test_bad_input_fails_before_any_training(
    text, kwargs, expected, tiny_config, no_dataset, write_params_file
):
    params_file = write_params_file(text)
    with pytest.raises(ConfigError, match=expected) as error:
        run_hyper("MeLU", "tiny", params_file=params_file, config_dict=tiny_config, **kwargs)
    assert "\n" not in str(error.value)
    if "line " in expected:
        assert str(error.value).startswith(f"{params_file}, line ")


def test_values_within_the_declared_form_pass(tiny_config, write_params_file):
    text = "epochs quniform 1,5,1\ndropout_prob uniform 0,0.5\nlocal_lr loguniform -5,-1\n"
    params_file = write_params_file(text)
    config = Config("MeLU", "tiny", config_dict=tiny_config)
    check_search_space(read_params_file(params_file), config, params_file, algo="random")


def test_missing_params_file_and_model_without_one(tiny_config, no_dataset):
    with pytest.raises(ConfigError, match=r"Params file 'nope.hyper' does not exist"):
        run_hyper("MeLU", "tiny", params_file="nope.hyper", config_dict=tiny_config)
    with pytest.raises(ConfigError, match=r"ships no params file for GlobalMean"):
        run_hyper("GlobalMean", "tiny", config_dict=tiny_config)


@pytest.mark.parametrize(
    "model",
    ["MeLU", "CCML", "MML", "TaNP", "MAMO", "TargetMF", "EMCDR", "SSCDR", "PTUPCDR", "MetaMMCDR"],
)
def test_shipped_params_files_are_small_valid_grids(model, tiny_config, cdr_config):
    path = default_params_file(model)
    dimensions = read_params_file(path)
    if model in ("MeLU", "CCML", "MML", "TaNP", "MAMO"):
        config = Config(model, "tiny", config_dict=tiny_config)
    else:
        config = Config(model, config_dict=cdr_config)
    check_search_space(dimensions, config, path)
    assert math.prod(len(d.values) for d in dimensions) <= 8
    if model == "CCML":
        for n_beneficial in dict((d.name, d.values) for d in dimensions)["n_beneficial"]:
            assert n_beneficial <= config["n_similar"]
        for pool_size in dict((d.name, d.values) for d in dimensions)["pool_size"]:
            assert pool_size >= config["n_similar"] + config["n_negative"]


def test_every_key_the_split_reads_is_frozen(tiny_config):
    for module in (cold_start_dataset, cross_domain_dataset):
        read = set(re.findall(r'config\["(\w+)"\]', inspect.getsource(module)))
        read -= {"allow_unknown_config_keys"}  # input checking only, not the split
        assert read
        assert read <= frozen_keys(Config("MeLU", "tiny", config_dict=tiny_config))


@pytest.mark.parametrize("owner", SPLIT_KEY_OWNERS, ids=lambda owner: owner.__name__)
def test_declared_split_keys_are_config_keys_the_class_reads_or_documents(owner):
    assert owner.split_keys
    documented = known_config_keys() - ENTRY_POINT_KEYS  # properties/ YAML or RecBole's
    source = inspect.getsource(owner)
    for key in owner.split_keys:
        assert key in documented
        assert f"``{key}``" in owner.__doc__ or f'config["{key}"]' in source


def test_frozen_keys_are_the_hand_kept_ones(tiny_config):
    assert SPLIT_KEYS | RUN_SPLIT_KEYS | SELECTION_KEYS == HAND_KEPT_FROZEN_KEYS
    config = Config("MeLU", "tiny", config_dict=tiny_config)
    assert frozen_keys(config) == set(config.parameters["Dataset"]) | HAND_KEPT_FROZEN_KEYS
