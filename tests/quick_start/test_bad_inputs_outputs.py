"""Catalogue of bad outputs and bad resumes: each stops with exit code 2 and one ``error:`` line
on stderr, before any data loads and before any training.

Paths are made uncreatable by putting them under a regular file (``blocker/r.json`` with
``blocker`` a file), which fails for root too, where permission bits would not.
"""

import pytest
import torch
from recbole.trainer import Trainer

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.quick_start import build_config, quick_start
from recbole_coldmeta.quick_start.cli import main
from recbole_coldmeta.quick_start.hyper import hyperopt_runner
from recbole_coldmeta.quick_start.hyper.cli import main as hyper_main
from recbole_coldmeta.registry import get_model, get_trainer


@pytest.fixture(scope="module")
def melu_resume_file(tiny_data_path, tmp_path_factory):
    """A real last-epoch checkpoint of MeLU on ``tiny`` (seed 2020), holding epoch 0."""
    folder = tmp_path_factory.mktemp("resume")
    config = build_config(
        "MeLU",
        "tiny",
        config_dict={
            "data_path": tiny_data_path,
            "load_col": None,
            "epochs": 2,
            "show_progress": False,
            "checkpoint_dir": str(folder),
            "state": "WARNING",
        },
    )
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    model = get_model("MeLU")(config, train_data.dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "MeLU")(config, model)
    trainer.write_resume_checkpoints = True
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    return trainer.last_checkpoint_file, trainer.saved_model_file


@pytest.fixture
def paths(tmp_path, tiny_data_path, melu_resume_file):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file\n")
    fake = tmp_path / "fake-last.pth"
    torch.save({"epoch": 3, "state_dict": {}}, fake)  # a dict, but not a last-epoch checkpoint
    benchmark = tmp_path / "bench.yaml"
    benchmark.write_text(
        "name: b\ndataset: tiny\nseeds: [1]\nmodels:\n  - model: BPR\n"
        f"config: {{data_path: {tiny_data_path}, epochs: 1}}\n"
    )
    last, best = melu_resume_file
    return {
        "blocker": blocker,
        "dir": tmp_path,
        "fake": fake,
        "last": last,
        "best": best,
        "bench": benchmark,
        "data": tiny_data_path,
    }


@pytest.fixture
def nothing_runs(monkeypatch):
    """Fail the test if data loads or anything trains."""

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the bad input was reported")

    monkeypatch.setattr(quick_start, "create_dataset", forbidden)
    monkeypatch.setattr(quick_start, "run_coldmeta_parallel", forbidden)
    monkeypatch.setattr(Trainer, "fit", forbidden)
    monkeypatch.setattr(hyperopt_runner, "SharedSplitObjective", forbidden)


def _run(p, *args):
    return main(["--model=MeLU", "--dataset=tiny", f"--data_path={p['data']}", *args])


def _resume(p, *args):
    return _run(p, f"--resume={p['last']}", *args)


CASES = [
    # --result_file
    ("result file under a file", lambda p: _run(p, f"--result_file={p['blocker']}/r.json"),
     "--result_file="),
    ("result file deep under a file",
     lambda p: _run(p, f"--result_file={p['blocker']}/a/b/r.json"), "cannot be written"),
    ("result file is a folder", lambda p: _run(p, f"--result_file={p['dir']}"), "is a folder"),
    # checkpoint_dir
    ("checkpoint_dir under a file", lambda p: _run(p, f"--checkpoint_dir={p['blocker']}/saved"),
     "checkpoint_dir="),
    ("checkpoint_dir is a file", lambda p: _run(p, f"--checkpoint_dir={p['blocker']}"),
     "cannot be written"),
    # --resume
    ("resume of a missing file", lambda p: _run(p, f"--resume={p['dir']}/none-last.pth"),
     "no such file"),
    ("resume of a text file", lambda p: _run(p, f"--resume={p['blocker']}"),
     "is not a last-epoch checkpoint"),
    ("resume of another torch file", lambda p: _run(p, f"--resume={p['fake']}"),
     "is not a last-epoch checkpoint"),
    ("resume of a best-model checkpoint", lambda p: _run(p, f"--resume={p['best']}"),
     "is not a last-epoch checkpoint"),
    ("resume of another model's checkpoint", lambda p: main(
        ["--model=BPR", "--dataset=tiny", f"--data_path={p['data']}", f"--resume={p['last']}"]
    ), "written by a run with model=MeLU"),
    ("resume with another seed", lambda p: _resume(p, "--seed=7"), "--seed=2020"),
    ("resume with no epoch left", lambda p: _resume(p, "--epochs=1"), "nothing is left to train"),
    ("resume of a phased model with another model's checkpoint", lambda p: main(
        ["--model=MML", "--dataset=tiny", f"--data_path={p['data']}", f"--resume={p['last']}"]
    ), "written by a run with model=MeLU"),
    ("resume of a closed-form model", lambda p: main(
        ["--model=UserItemBias", "--dataset=tiny", f"--data_path={p['data']}",
         f"--resume={p['last']}"]
    ), "cannot be resumed"),
    ("resume of a data-parallel run", lambda p: _resume(p, "--nproc=2"), "single-process"),
    # run_hyper_coldmeta.py --output_file
    ("hyper output under a file", lambda p: hyper_main(
        ["--model=MeLU", "--dataset=tiny", f"--output_file={p['blocker']}/h.result"]
    ), "--output_file="),
    ("hyper output is a folder", lambda p: hyper_main(
        ["--model=MeLU", "--dataset=tiny", f"--output_file={p['dir']}"]
    ), "is a folder"),
    # the benchmark runner's output folder
    ("benchmark output under a file", lambda p: main(
        [f"--benchmark={p['bench']}", f"--output_dir={p['blocker']}/results"]
    ), "--output_dir="),
    ("benchmark output is a file", lambda p: main(
        [f"--benchmark={p['bench']}", f"--output_dir={p['blocker']}"]
    ), "cannot be written"),
    ("benchmark with --result_file", lambda p: main(
        [f"--benchmark={p['bench']}", f"--result_file={p['dir']}/r.json"]
    ), "--benchmark takes no"),
]  # fmt: skip


@pytest.mark.parametrize("run, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_output_or_resume_stops_before_any_work(run, expected, paths, nothing_runs, capsys):
    assert run(paths) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert expected in lines[0]
    assert "Traceback" not in captured.err + captured.out
