"""Hyper-parameter tuning on tiny data: one shared split, selection on validation, bad input."""

import csv
import inspect
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

import recbole_coldmeta.data.dataset.cold_start_dataset as cold_start_dataset
import recbole_coldmeta.data.dataset.cross_domain_dataset as cross_domain_dataset
from recbole_coldmeta.config import Config
from recbole_coldmeta.quick_start import hyper, run_coldmeta
from recbole_coldmeta.quick_start.hyper import (
    check_search_space,
    default_params_file,
    frozen_keys,
    main,
    read_params_file,
    run_hyper,
)
from recbole_coldmeta.utils import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def count_dataset_builds(monkeypatch):
    """Count calls to ``create_dataset`` made by the tuner."""
    calls = []
    original = hyper.create_dataset

    def counting(config):
        calls.append(config["dataset"])
        return original(config)

    monkeypatch.setattr(hyper, "create_dataset", counting)
    return calls


@pytest.fixture
def no_dataset(monkeypatch):
    """Fail the test if the tuner gets as far as building the dataset."""

    def refuse(config):
        raise AssertionError("the dataset was built before the input was checked")

    monkeypatch.setattr(hyper, "create_dataset", refuse)


def _params_file(text, name="melu.hyper"):
    path = Path(name)
    path.write_text(text)
    return str(path)


def test_trials_share_one_split_and_the_best_validation_trial_is_selected(
    tiny_config, count_dataset_builds, monkeypatch
):
    train_batch_sizes = []
    original = hyper.data_preparation

    def spying(config, dataset):
        loaders = original(config, dataset)
        train_batch_sizes.append((config["task_batch_size"], loaders[0].batch_size))
        return loaders

    monkeypatch.setattr(hyper, "data_preparation", spying)
    params_file = _params_file("local_lr choice [0.01,0.05]\ntask_batch_size choice [16,64]\n")

    small = {**tiny_config, "local_steps": 1, "embedding_size": 8, "mlp_hidden_size": [16]}

    result = run_hyper("MeLU", "tiny", params_file=params_file, max_evals=3, config_dict=small)

    assert count_dataset_builds == ["tiny"]
    trials = result["trials"]
    assert len(trials) == 3
    assert len({json.dumps(t["params"], sort_keys=True) for t in trials}) == 3
    # a tuned loader key reaches the trial's loaders (RecBole's update_config would not)
    assert [size for size, _ in train_batch_sizes] == [
        t["params"]["task_batch_size"] for t in trials
    ]
    assert all(tuned == used for tuned, used in train_batch_sizes)
    # selection: lowest validation MAE (valid_metric of the rating protocol), never test
    assert result["valid_metric"] == "MAE" and not result["valid_score_bigger"]
    for trial in trials:
        assert trial["best_valid_score"] == trial["valid_result"]["mae"]
        assert trial["test_result"].keys() == trial["valid_result"].keys()
        assert trial["seconds"] > 0
    best = min(trials, key=lambda t: t["best_valid_score"])
    assert result["best_trial"] == best["trial"]
    assert result["best_params"] == best["params"]
    assert result["test_result"] == best["test_result"]

    with open(result["trials_file"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(row["trial"]) for row in rows] == [1, 2, 3]
    assert [row["selected"] for row in rows].count("True") == 1
    selected = next(row for row in rows if row["selected"] == "True")
    assert int(selected["trial"]) == best["trial"]
    assert float(selected["valid/mae"]) == best["valid_result"]["mae"]
    assert float(selected["test/rmse"]) == best["test_result"]["rmse"]
    assert {"local_lr", "task_batch_size", "valid_score", "seconds"} <= set(rows[0])
    assert Path(result["plot_file"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = Path(result["output_file"]).read_text()
    assert text.count("Valid result:") == 4  # every trial, then the selected one
    assert f"Best params (trial {best['trial']} of 3" in text


def test_a_trial_gives_the_numbers_of_a_single_run(tiny_config):
    params_file = _params_file("local_lr choice [0.05]\nlocal_steps choice [2]\n")
    result = run_hyper("MeLU", "tiny", params_file=params_file, config_dict=tiny_config)
    single = run_coldmeta("MeLU", "tiny", config_dict={**tiny_config, **result["best_params"]})
    assert result["best_valid_result"] == single["valid_result"]
    assert result["test_result"] == single["test_result"]


def test_main_prints_the_selected_trial_last(tiny_data_path, capsys):
    params_file = _params_file("local_steps choice [1,2]\n")
    code = main(
        [
            "--model=MeLU",
            "--dataset=tiny",
            f"--params_file={params_file}",
            "--output_file=out.result",
            f"--data_path={tiny_data_path}",
            "--load_col=None",
            "--epochs=1",
            "--show_progress=False",
            "--state=WARNING",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["best_params"]["local_steps"] in (1, 2)
    assert math.isfinite(summary["test_result"]["mae"])
    assert Path("out_trials.csv").is_file() and Path("out_trials.png").is_file()


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
    ],
)
def test_bad_input_fails_before_any_training(text, kwargs, expected, tiny_config, no_dataset):
    params_file = _params_file(text)
    with pytest.raises(ConfigError, match=expected) as error:
        run_hyper("MeLU", "tiny", params_file=params_file, config_dict=tiny_config, **kwargs)
    assert "\n" not in str(error.value)
    if "line " in expected:
        assert str(error.value).startswith(f"{params_file}, line ")


def test_missing_params_file_and_model_without_one(tiny_config, no_dataset):
    with pytest.raises(ConfigError, match=r"Params file 'nope.hyper' does not exist"):
        run_hyper("MeLU", "tiny", params_file="nope.hyper", config_dict=tiny_config)
    with pytest.raises(ConfigError, match=r"ships no params file for GlobalMean"):
        run_hyper("GlobalMean", "tiny", config_dict=tiny_config)


def test_cli_exits_2_with_one_line_for_a_missing_params_file(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "run_hyper_coldmeta.py"),
            "--model=MeLU",
            "--params_file=missing.hyper",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert lines[-1].startswith("error: Params file 'missing.hyper' does not exist")
    assert "Traceback" not in completed.stderr


@pytest.mark.parametrize(
    "model", ["MeLU", "CCML", "MML", "TargetMF", "EMCDR", "SSCDR", "PTUPCDR", "MetaMMCDR"]
)
def test_shipped_params_files_are_small_valid_grids(model, tiny_config, cdr_config):
    path = default_params_file(model)
    dimensions = read_params_file(path)
    if model in ("MeLU", "CCML", "MML"):
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


def test_cross_domain_trials_share_one_split(cdr_config, count_dataset_builds):
    params_file = _params_file("meta_dim choice [8,16]\n", name="ptupcdr.hyper")
    result = run_hyper("PTUPCDR", params_file=params_file, config_dict=cdr_config)
    assert count_dataset_builds == ["cdr-t"]
    assert len(result["trials"]) == 2
    assert all(math.isfinite(t["test_result"]["mae"]) for t in result["trials"])


def test_ray_tune_runs_the_trials_on_the_shared_split(tiny_config, count_dataset_builds, tmp_path):
    params_file = _params_file("local_lr choice [0.01,0.05]\n")
    small = {**tiny_config, "local_steps": 1, "embedding_size": 8, "mlp_hidden_size": [16]}
    small["checkpoint_dir"] = str(tmp_path / "saved")
    output = str(tmp_path / "ray.result")
    result = run_hyper(
        "MeLU", "tiny", params_file=params_file, tool="Ray", config_dict=small, output_file=output
    )
    assert count_dataset_builds == ["tiny"]  # built once, in the driver
    trials = result["trials"]
    assert sorted(t["params"]["local_lr"] for t in trials) == [0.01, 0.05]
    single = run_coldmeta("MeLU", "tiny", config_dict={**small, "local_lr": 0.05})
    ray_trial = next(t for t in trials if t["params"]["local_lr"] == 0.05)
    assert ray_trial["test_result"] == single["test_result"]  # same split, same numbers
    best = min(trials, key=lambda t: t["best_valid_score"])
    assert result["best_params"] == best["params"]
    assert len(list((tmp_path / "ray_ray" / "trials").glob("*/result.json"))) == 2
    assert "Best params" in Path(output).read_text()
