"""Per-user results reproduce a run's reported metrics, on tiny rating and ranking runs."""

import json
import math

import numpy as np
import pytest
import torch
import yaml

from recbole_coldmeta.config import Config
from recbole_coldmeta.evaluator import aggregate, per_user_metrics
from recbole_coldmeta.evaluator.collector import ColdCollector
from recbole_coldmeta.quick_start import run_coldmeta, write_result
from recbole_coldmeta.quick_start.cli import main
from recbole_coldmeta.quick_start.user_results import read_user_results
from recbole_coldmeta.utils import properties_dir

#: RecBole rounds reported metrics to ``metric_decimal_place`` (4) digits.
ROUNDING = 0.5e-4 + 1e-12


def _columns(rows, split, state=""):
    rows = [row for row in rows if row["split"] == split and row["state"] == state]
    metrics = [key for key in rows[0] if key not in ("split", "state", "user", "n_rows")]
    values = {name: np.array([row[name] for row in rows]) for name in metrics}
    return rows, values, np.array([row["n_rows"] for row in rows])


def _check_reproduces(result, rows, split, state=""):
    reported = result["test_result" if split == "test" else "valid_result"]
    users, values, n_rows = _columns(rows, split, state)
    assert len({row["user"] for row in users}) == len(users)
    for name, value in reported.items():
        assert abs(float(aggregate(name, values, n_rows)) - value) <= ROUNDING, name
    return values, n_rows


def test_rating_run_users_reproduce_mae_rmse_and_query_ndcg(tiny_config, tmp_path):
    # support: each user's first 5 rows, query: the rest (10 to 25 rows: MAE weights them)
    config = {**tiny_config, "user_results": True, "support_mode": "first", "support_size": 5}
    result = run_coldmeta("UserItemBias", "tiny", config_dict=config)
    assert set(result["test_result"]) == {
        "mae",
        "rmse",
        "query_ndcg@1",
        "query_ndcg@3",
        "query_ndcg@5",
    }
    write_result(result, str(tmp_path / "r.json"))
    written = json.loads((tmp_path / "r.json").read_text())
    assert "user_results" not in written and written["user_results_file"] == "r.users.csv.gz"
    rows = read_user_results(str(tmp_path / "r.users.csv.gz"))
    assert len(rows) == result["split"]["test_users"] + result["split"]["valid_users"]
    values, n_rows = _check_reproduces(result, rows, "test")
    _check_reproduces(result, rows, "valid")
    assert len(set(n_rows)) > 1
    # MAE is a mean over rows: the row-weighted mean of the users' MAE, not their plain mean
    assert math.isclose(
        float(aggregate("mae", values, n_rows)),
        float((values["mae"] * n_rows).sum() / n_rows.sum()),
    )
    assert np.allclose(values["rmse"], np.sqrt(values["mse"]))


def test_ranking_run_users_reproduce_recbole_topk_metrics(tiny_config):
    protocol = str(properties_dir() / "protocol" / "ranking.yaml")
    config = {**tiny_config, "user_results": True, "metrics": ["Recall", "NDCG", "Hit", "MRR"]}
    result = run_coldmeta("BPR", "tiny", config_file_list=[protocol], config_dict=config)
    assert "ndcg@10" in result["test_result"] and "mrr@20" in result["test_result"]
    values, n_rows = _check_reproduces(result, result["user_results"], "test")
    _check_reproduces(result, result["user_results"], "valid")
    assert (n_rows >= 1).all()  # each user's positives: their query rows
    assert ((values["hit@5"] == 0) | (values["hit@5"] == 1)).all()


def test_states_of_also_test_states_get_their_own_users(states_config):
    config = {**states_config, "user_results": True, "also_test_states": ["test_b"]}
    result = run_coldmeta("MeLU", "states", config_dict=config)
    rows = result["user_results"]
    assert {row["state"] for row in rows if row["split"] == "test"} == {"test", "test_b"}
    for state in ("test", "test_b"):
        users, values, n_rows = _columns(rows, "test", state)
        for name, value in result["state_results"][state].items():
            assert abs(float(aggregate(name, values, n_rows)) - value) <= ROUNDING, name
    tested = {
        state: {r["user"] for r in rows if r["state"] == state} for state in ("test", "test_b")
    }
    assert not tested["test"] & tested["test_b"]


def test_without_user_results_the_result_has_none(tiny_config):
    result = run_coldmeta("GlobalMean", "tiny", config_dict=tiny_config)
    assert "user_results" not in result


def test_collector_names_the_user_of_each_ranking_list():
    config = Config(
        "BPR",
        "ml-100k",
        config_dict={"metrics": ["Recall"], "topk": [2], "valid_metric": "recall@2"},
    )
    collector = ColdCollector(config)
    collector.keep_users = True
    interaction = {config["USER_ID_FIELD"]: torch.tensor([7, 7, 7, 3, 3])}  # grouped rows
    scores = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.8, 0.1]])  # [2 lists, 3 items]
    collector.eval_batch_collect(scores, interaction, torch.tensor([0, 1]), torch.tensor([0, 2]))
    struct = collector.get_data_struct()
    assert struct.get("data.user").tolist() == [7, 3]
    users, n_rows, values = per_user_metrics(config, collector.last_struct)
    assert users.tolist() == [3, 7] and n_rows.tolist() == [1, 1]
    assert values["recall@2"].tolist() == [0.0, 1.0]


@pytest.mark.parametrize("name", ["mae", "rmse", "ndcg@10"])
def test_aggregate_keeps_leading_dimensions(name):
    values = {"mae": np.ones((3, 4)), "mse": np.full((3, 4), 4.0), "ndcg@10": np.full((3, 4), 0.5)}
    values["ndcg@10"][0, 0] = np.nan
    result = aggregate(name, values, np.ones((3, 4)))
    assert result.shape == (3,)
    assert np.allclose(result, {"mae": 1.0, "rmse": 2.0, "ndcg@10": 0.5}[name])


def test_cross_domain_run_users_reproduce_its_metrics(cdr_config):
    result = run_coldmeta("TargetMF", "cdr-t", config_dict={**cdr_config, "user_results": True})
    _check_reproduces(result, result["user_results"], "test")
    _check_reproduces(result, result["user_results"], "valid")


def test_sequential_run_users_reproduce_its_metrics(sequential_cold_config):
    protocol = str(properties_dir() / "protocol" / "sequential_cold.yaml")
    config = {**sequential_cold_config, "user_results": True}
    result = run_coldmeta("SASRec", "tiny", config_file_list=[protocol], config_dict=config)
    _check_reproduces(result, result["user_results"], "test")


def test_the_command_line_writes_the_users_beside_the_result(tiny_config, tmp_path):
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump({**tiny_config, "user_results": True}))
    result_file = tmp_path / "out" / "run.json"
    argv = ["--model=GlobalMean", "--dataset=tiny", f"--config_files={config_file}"]
    assert main([*argv, f"--result_file={result_file}"]) == 0
    rows = read_user_results(str(tmp_path / "out" / "run.users.csv.gz"))
    _check_reproduces(json.loads(result_file.read_text()), rows, "test")
