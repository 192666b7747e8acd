"""``run_hyper_coldmeta.py``'s command line: the summary line, one-line errors."""

import json
import math
import subprocess
import sys
from pathlib import Path

from recbole_coldmeta.quick_start.hyper import main

REPO = Path(__file__).resolve().parents[3]


def test_main_prints_the_selected_trial_last(tiny_data_path, capsys, write_params_file):
    params_file = write_params_file("local_steps choice [1,2]\n")
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
