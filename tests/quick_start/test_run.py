"""End-to-end runs through the entry point on tiny data: RecBole built-ins and the CLI contract."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from recbole_coldmeta.quick_start import run_coldmeta
from recbole_coldmeta.quick_start.cli import main
from recbole_coldmeta.utils import properties_dir

REPO = Path(__file__).resolve().parents[2]
RESULT_KEYS = {
    "model",
    "dataset",
    "seed",
    "best_valid_score",
    "valid_result",
    "test_result",
    "train_seconds",
    "test_seconds",
}

BUILTIN_OVERRIDES = {
    "BPR": {},
    "NeuMF": {"mlp_hidden_size": [16]},
    "DeepFM": {"threshold": {"rating": 4}},
    "SASRec": {"MAX_ITEM_LIST_LENGTH": 10, "n_layers": 1, "hidden_size": 16, "inner_size": 32},
}


def _check_result(result, model):
    assert RESULT_KEYS <= set(result)
    assert result["model"] == model and result["dataset"] == "tiny"
    assert result["test_result"], "no test metric"
    assert result["test_result"].keys() == result["valid_result"].keys()
    for value in result["test_result"].values():
        assert isinstance(value, float) and math.isfinite(value)
    assert result["train_seconds"] > 0 and result["test_seconds"] > 0


@pytest.mark.parametrize("model", sorted(BUILTIN_OVERRIDES))
def test_recbole_builtin_runs_one_epoch(model, tiny_config):
    config = {**tiny_config, **BUILTIN_OVERRIDES[model]}
    result = run_coldmeta(model=model, dataset="tiny", config_dict=config)
    _check_result(result, model)


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, str(REPO / "run_recbole_coldmeta.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_cli_writes_result_file_and_prints_test_result_last(tiny_data_path, tmp_path):
    result_file = tmp_path / "out" / "r.json"  # its folder is created
    completed = _cli(
        "--model=BPR",
        "--dataset=tiny",
        f"--data_path={tiny_data_path}",
        "--epochs=2",
        "--seed=7",
        "--show_progress=False",
        f"--result_file={result_file}",
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(result_file.read_text())
    _check_result(result, "BPR")
    assert result["seed"] == 7
    last_line = json.loads(completed.stdout.strip().splitlines()[-1])
    assert last_line == {
        "model": "BPR",
        "dataset": "tiny",
        "seed": 7,
        "test_result": last_line["test_result"],
    }
    assert last_line["test_result"] == result["test_result"]
    # the log (RecBole's INFO lines) is on stdout; stderr is for errors only, and no
    # GradScaler FutureWarning was printed for the CPU run
    assert completed.stderr == ""
    assert "Saving current" in completed.stdout and "GradScaler" not in completed.stdout
    # the run's checkpoints are gone once its result is in (keep_checkpoints: False)
    assert list((tmp_path / "saved").iterdir()) == []
    names = sorted(p.name for p in result_file.parent.iterdir())
    assert names == ["r.json", "r.split.csv.gz"]  # no temporary left


def test_keep_checkpoints_keeps_only_the_best_model(tiny_config, tmp_path):
    run_coldmeta("MeLU", "tiny", config_dict={**tiny_config, "epochs": 3, "keep_checkpoints": True})
    kept = [p.name for p in (tmp_path / "saved").iterdir()]
    assert len(kept) == 1 and kept[0].startswith("MeLU-") and not kept[0].endswith("-last.pth")


@pytest.mark.parametrize(
    "args, expected",
    [
        # found after the data loaded and the log began
        (["--support_mode=first", "--support_size=1000"], "support"),
        # found by the config, before the data loads
        (["--dataset=nosuch"], "Dataset 'nosuch' not found"),
    ],
)
def test_an_error_is_the_only_line_on_stderr(args, expected, tiny_data_path, tmp_path):
    completed = _cli(
        "--model=MeLU", "--dataset=tiny", f"--data_path={tiny_data_path}", *args, cwd=tmp_path
    )
    assert completed.returncode == 2
    lines = completed.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines


def test_help_lists_the_models_and_the_data_flags(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--dataset", "--data_path", "--config_files", "--result_file", "--resume"):
        assert flag in text
    for model in ("MeLU", "CCML", "MML", "UserItemBias", "PTUPCDR"):
        assert model in text


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model=BRP"], "Unknown model 'BRP'"),
        (["--model=bpr"], "Did you mean 'BPR'?"),
        (["--model=BPR", "--dataset=no_such_data"], "Dataset 'no_such_data' not found"),
        (
            ["--model=BPR", "--config_files=missing.yaml"],
            "Config file 'missing.yaml' does not exist",
        ),
        (["--model=BPR", "--epochz=3"], "Did you mean 'epochs'?"),
        (["--model=BPR", "--epochs", "3"], "overrides are written --key=value"),
    ],
)
def test_bad_input_gives_one_clear_line(args, expected, capsys):
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert expected in lines[0]
    assert captured.out == ""


def test_melu_and_bpr_share_the_split_and_runs_repeat_exactly(tiny_config):
    melu = run_coldmeta("MeLU", "tiny", config_dict={**tiny_config, "epochs": 2})
    bpr = run_coldmeta("BPR", "tiny", config_dict=tiny_config)
    assert melu["split"] == bpr["split"]
    assert set(melu["test_result"]) >= {"mae", "rmse", "query_ndcg@3"}
    again = run_coldmeta("MeLU", "tiny", config_dict={**tiny_config, "epochs": 2})
    for key in ("valid_result", "test_result", "split", "best_valid_score"):
        assert again[key] == melu[key]
    other_seed = run_coldmeta("MeLU", "tiny", config_dict={**tiny_config, "epochs": 2, "seed": 5})
    assert other_seed["test_result"] != melu["test_result"]


SEQUENTIAL_SMALL = {"n_layers": 1, "hidden_size": 16, "inner_size": 32, "embedding_size": 16}


@pytest.mark.parametrize("model", ["SASRec", "GRU4Rec", "BERT4Rec"])
def test_recbole_sequential_models_run_on_the_sequential_cold_start_protocol(model, tiny_config):
    protocol = str(properties_dir() / "protocol" / "sequential_cold.yaml")
    config = {**tiny_config, **SEQUENTIAL_SMALL}
    result = run_coldmeta(model, "tiny", config_file_list=[protocol], config_dict=config)
    assert {"recall@10", "mrr@10", "ndcg@10"} <= set(result["test_result"])
    # one query row (the last of the first 10 interactions) per test user
    assert result["split"]["test_inters"] == result["split"]["test_users"]


def test_also_test_states_evaluates_the_trained_model_on_each_state(states_config):
    config = {**states_config, "also_test_states": ["test_b"], "epochs": 2}
    result = run_coldmeta("MeLU", "states", config_dict=config)
    states = result["state_results"]
    assert set(states) == {"test", "test_b"} and states["test"] == result["test_result"]
    assert states["test_b"] != states["test"] and 0.2 < states["test_b"]["mae"] < 2.0
    assert result["state_splits"]["test"] == result["split"]
    assert result["state_splits"]["test_b"]["test_users"] == 12  # users 1, 6, ..., 56


@pytest.mark.parametrize(
    "model, overrides, message",
    [
        ("ItemMean", {}, "run it once per test_state"),
        ("MeLU", {"user_split": "random"}, "needs a split by state"),
        ("MeLU", {"also_test_states": "test_b"}, "must be a list"),
    ],
)
def test_also_test_states_is_refused_where_it_would_mislead(
    states_config, model, overrides, message
):
    from recbole_coldmeta.utils import ConfigError

    config = {**states_config, "also_test_states": ["test_b"], **overrides}
    with pytest.raises(ConfigError, match=message):
        run_coldmeta(model, "states", config_dict=config)


def test_time_states_train_once_and_test_all_four_states(tiny_config, late_data_path):
    config = {
        **tiny_config,
        "data_path": late_data_path,
        "user_split": "time_states",
        "split_time": 1.5e7,
        "test_state": "user_cold_testing",
        "also_test_states": ["warm_up", "item_cold_testing", "user_and_item_cold_testing"],
        "query_size": 1,
        "user_inter_num_interval": "[0,inf)",
        "task_size_interval": "[2,inf]",
    }
    result = run_coldmeta("MeLU", "late", config_dict=config)
    assert len(result["state_results"]) == 4
    assert all(0.2 < r["mae"] < 3.0 for r in result["state_results"].values())
    test_users = {s: split["test_users"] for s, split in result["state_splits"].items()}
    assert test_users["user_cold_testing"] == 10  # users 50-59
