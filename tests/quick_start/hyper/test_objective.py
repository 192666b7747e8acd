"""The shared-split objective: a trial gives the numbers of a single run."""

from recbole_coldmeta.quick_start import run_coldmeta
from recbole_coldmeta.quick_start.hyper import run_hyper


def test_a_trial_gives_the_numbers_of_a_single_run(tiny_config, write_params_file):
    params_file = write_params_file("local_lr choice [0.05]\nlocal_steps choice [2]\n")
    result = run_hyper("MeLU", "tiny", params_file=params_file, config_dict=tiny_config)
    single = run_coldmeta("MeLU", "tiny", config_dict={**tiny_config, **result["best_params"]})
    assert result["best_valid_result"] == single["valid_result"]
    assert result["test_result"] == single["test_result"]
