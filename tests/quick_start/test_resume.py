"""A killed run resumes to exactly the result of the run that was not killed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from recbole_coldmeta.quick_start import quick_start, run_coldmeta
from recbole_coldmeta.trainer import ColdMetaTrainerMixin
from recbole_coldmeta.trainer.resume import RESUME_FORMAT, RunInterrupted
from recbole_coldmeta.utils import ConfigError

REPO = Path(__file__).resolve().parents[2]
TIMINGS = ("train_seconds", "test_seconds")
CCML_SMALL = {"n_similar": 5, "n_negative": 10, "n_beneficial": 3, "pool_size": 20}


def _without_timings(result):
    return {key: value for key, value in result.items() if key not in TIMINGS}


@pytest.fixture
def trainers(monkeypatch):
    """Every trainer run_coldmeta builds, in order."""
    built = []
    build = quick_start.build_model_and_trainer

    def recording(*args, **kwargs):
        model, trainer = build(*args, **kwargs)
        built.append(trainer)
        return model, trainer

    monkeypatch.setattr(quick_start, "build_model_and_trainer", recording)
    return built


def _interrupt_in_epoch(monkeypatch, epoch, batch=2, phase=None, occurrence=1):
    """Make the next run raise KeyboardInterrupt in the ``batch``-th batch of ``epoch``, as
    Ctrl-C would, in the middle of an epoch; in a phased run, of the ``occurrence``-th trainer
    of ``phase`` that reaches ``epoch`` (2: a ``pretrain_refit`` refit)."""
    train_epoch = ColdMetaTrainerMixin._train_epoch
    reached = []

    def interrupted(self, train_data, epoch_idx, *args, **kwargs):
        in_phase = phase is None or self.model.phase.value == phase
        if epoch_idx == epoch and in_phase:
            reached.append(self)
        if epoch_idx == epoch and in_phase and len(reached) == occurrence:
            loss, seen = self.model.calculate_loss, []

            def stop(interaction):
                seen.append(1)
                if len(seen) == batch:
                    raise KeyboardInterrupt
                return loss(interaction)

            self.model.calculate_loss = stop
        return train_epoch(self, train_data, epoch_idx, *args, **kwargs)

    monkeypatch.setattr(ColdMetaTrainerMixin, "_train_epoch", interrupted)


def _resumes_exactly(model, config, trainers, tmp_path, monkeypatch, **where):
    """Run, run again interrupted at ``where``, resume: the result and the parameters are
    those of the uninterrupted run. Returns the interruption."""
    reference = run_coldmeta(model, config_dict=config)
    with monkeypatch.context() as patch:
        _interrupt_in_epoch(patch, **where)
        with pytest.raises(RunInterrupted) as stopped:
            run_coldmeta(model, config_dict=config)
    assert stopped.value.epoch == where["epoch"]
    assert Path(stopped.value.resume_file).is_file()  # kept for the resume
    resumed = run_coldmeta(model, config_dict=config, resume=stopped.value.resume_file)
    assert _without_timings(resumed) == _without_timings(reference)
    first, _, last = trainers
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, last.model.state_dict()[key]), key
    assert list((tmp_path / "saved").iterdir()) == []  # cleaned once the result is in
    return stopped.value


@pytest.mark.parametrize(
    "model, overrides",
    [("MeLU", {}), ("BPR", {"train_batch_size": 256}), ("CCML", CCML_SMALL)],
)
def test_interrupted_run_resumes_to_the_uninterrupted_result(
    model, overrides, tiny_config, tmp_path, trainers, monkeypatch
):
    config = {**tiny_config, **overrides, "epochs": 4, "dataset": "tiny"}
    stopped = _resumes_exactly(model, config, trainers, tmp_path, monkeypatch, epoch=2)
    assert stopped.resume_file.endswith("-last.pth")
    first, _, last = trainers
    assert last.train_loss_dict == {e: first.train_loss_dict[e] for e in (2, 3)}


#: ``(model, overrides, where it is interrupted)``: each phase position, both stages of a refit
#: phase, both families. (A refit trains from the phase's initial parameters again, so only the
#: refit-free runs show that an interrupted fit continues with its trained parameters.)
PHASED_CASES = [
    ("PTUPCDR", {"pretrain_refit": False}, {"phase": "source_pretrain", "epoch": 1}),
    ("PTUPCDR", {"pretrain_refit": False}, {"phase": "target_pretrain", "epoch": 2}),
    ("PTUPCDR", {"pretrain_refit": True}, {"phase": "target_pretrain", "epoch": 1}),
    ("PTUPCDR", {"pretrain_refit": True}, {"phase": "source_pretrain", "epoch": 1,
                                           "occurrence": 2}),
    ("EMCDR", {"pretrain_refit": False}, {"phase": "bridge", "epoch": 2}),
    ("MML", {}, {"phase": "learners", "epoch": 1}),
    ("MML", {}, {"phase": "fusion", "epoch": 2}),
]  # fmt: skip
PHASED_IDS = ["first", "second", "refit-fit", "refit-refit", "last", "mml-first", "mml-last"]


@pytest.mark.parametrize("model, overrides, where", PHASED_CASES, ids=PHASED_IDS)
def test_an_interrupted_phased_run_resumes_to_the_uninterrupted_result(
    model, overrides, where, cdr_config, sequential_cold_config, tmp_path, trainers, monkeypatch
):
    if model == "MML":
        phases = [{**p, "epochs": 3} for p in sequential_cold_config["train_phases"]]
        config = {**sequential_cold_config, "dataset": "tiny", "train_phases": phases}
    else:
        config = {**cdr_config, "epochs": 3, "train_batch_size": 128}
    config = {**config, **overrides, "stopping_step": 100}
    stopped = _resumes_exactly(model, config, trainers, tmp_path, monkeypatch, **where)
    assert stopped.phase == where["phase"] and f"in phase {where['phase']}, " in str(stopped)


def test_a_phased_checkpoint_resumes_only_its_own_phases(cdr_config, monkeypatch):
    config = {**cdr_config, "epochs": 3}
    with monkeypatch.context() as patch:
        _interrupt_in_epoch(patch, phase="target_pretrain", epoch=1)
        with pytest.raises(RunInterrupted) as stopped:
            run_coldmeta("PTUPCDR", config_dict=config)
    resume_file = stopped.value.resume_file
    with pytest.raises(ConfigError, match="written by a run with model=PTUPCDR"):
        run_coldmeta("EMCDR", config_dict=config, resume=resume_file)
    other = [{"phase": "source_pretrain"}, {"phase": "bridge"}]
    with pytest.raises(ConfigError, match="phase target_pretrain, which this run's train_phases"):
        run_coldmeta("PTUPCDR", config_dict={**config, "train_phases": other}, resume=resume_file)
    with pytest.raises(ConfigError, match="nothing is left to train"):
        run_coldmeta("PTUPCDR", config_dict={**config, "epochs": 1}, resume=resume_file)
    with pytest.raises(ConfigError, match="pass --pretrain_refit=True"):
        run_coldmeta("PTUPCDR", config_dict={**config, "pretrain_refit": False}, resume=resume_file)


def test_a_checkpoint_of_format_1_still_resumes(tiny_config, tmp_path, monkeypatch):
    config = {**tiny_config, "epochs": 3, "dataset": "tiny"}
    with monkeypatch.context() as patch:
        _interrupt_in_epoch(patch, epoch=2)
        with pytest.raises(RunInterrupted) as stopped:
            run_coldmeta("MeLU", config_dict=config)
    resume_file = stopped.value.resume_file
    checkpoint = torch.load(resume_file, weights_only=True)
    assert checkpoint.pop("phase") is None and checkpoint["format"] == RESUME_FORMAT
    torch.save({**checkpoint, "format": "recbole_coldmeta/last-epoch/1"}, resume_file)
    resumed = run_coldmeta("MeLU", config_dict=config, resume=resume_file)
    assert _without_timings(resumed) == _without_timings(run_coldmeta("MeLU", config_dict=config))


def _cli(*args, cwd):
    return subprocess.Popen(
        [sys.executable, str(REPO / "run_recbole_coldmeta.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _cli_args(data_path):
    return [
        "--model=MeLU",
        "--dataset=tiny",
        f"--data_path={data_path}",
        "--load_col=None",
        "--epochs=6",
        "--stopping_step=100",
        "--show_progress=False",
    ]


def _kill_after_first_checkpoint(args, signum, cwd):
    """Start the CLI, send ``signum`` once its first last-epoch checkpoint exists; return the
    process's exit code and stderr."""
    killed = _cli(*args, cwd=cwd)
    deadline = time.monotonic() + 120
    while not list((cwd / "saved").glob("*-last.pth")):  # epoch 1 has started
        assert killed.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    killed.send_signal(signum)
    _, stderr = killed.communicate(timeout=120)
    return killed.returncode, stderr


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_killed_cli_run_prints_one_line_and_keeps_its_checkpoint(
    signum, code, tiny_data_path, tmp_path
):
    returncode, stderr = _kill_after_first_checkpoint(_cli_args(tiny_data_path), signum, tmp_path)
    assert returncode == code
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted in epoch "), stderr
    assert Path(lines[0].rsplit("--resume=", 1)[1]).is_file()


def test_a_cli_run_killed_by_sigterm_resumes_exactly(tiny_data_path, tmp_path):
    args = _cli_args(tiny_data_path)
    reference = _cli(*args, f"--result_file={tmp_path / 'reference.json'}", cwd=tmp_path)
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    _, stderr = _kill_after_first_checkpoint(args, signal.SIGTERM, tmp_path)
    resume_file = stderr.strip().rsplit("--resume=", 1)[1]

    resumed = _cli(
        *args, f"--resume={resume_file}", f"--result_file={tmp_path / 'r.json'}", cwd=tmp_path
    )
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0 and stderr == "", stderr
    result = json.loads((tmp_path / "r.json").read_text())
    expected = json.loads((tmp_path / "reference.json").read_text())
    assert _without_timings(result) == _without_timings(expected)
    assert json.loads(stdout.splitlines()[-1])["test_result"] == expected["test_result"]
    assert list((tmp_path / "saved").iterdir()) == []
