"""Ray Tune trials on the shared split."""

from pathlib import Path

from recbole_coldmeta.quick_start import run_coldmeta
from recbole_coldmeta.quick_start.hyper import run_hyper


def test_ray_tune_runs_the_trials_on_the_shared_split(
    tiny_config, count_dataset_builds, tmp_path, write_params_file
):
    params_file = write_params_file("local_lr choice [0.01,0.05]\n")
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
