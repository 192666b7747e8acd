"""The tuning driver on tiny data: one shared split, selection on validation, its outputs."""

import csv
import json
import math
from pathlib import Path

from recbole_coldmeta.quick_start.hyper import objective, run_hyper


def test_trials_share_one_split_and_the_best_validation_trial_is_selected(
    tiny_config, count_dataset_builds, monkeypatch, write_params_file
):
    train_batch_sizes = []
    original = objective.data_preparation

    def spying(config, dataset):
        loaders = original(config, dataset)
        train_batch_sizes.append((config["task_batch_size"], loaders[0].batch_size))
        return loaders

    monkeypatch.setattr(objective, "data_preparation", spying)
    params_file = write_params_file("local_lr choice [0.01,0.05]\ntask_batch_size choice [16,64]\n")

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


def test_cross_domain_trials_share_one_split(cdr_config, count_dataset_builds, write_params_file):
    params_file = write_params_file("meta_dim choice [8,16]\n", name="ptupcdr.hyper")
    result = run_hyper("PTUPCDR", params_file=params_file, config_dict=cdr_config)
    assert count_dataset_builds == ["cdr-t"]
    assert len(result["trials"]) == 2
    assert all(math.isfinite(t["test_result"]["mae"]) for t in result["trials"])
