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
from recbole_coldmeta.trainer.resume import RunInterrupted

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


def _interrupt_in_epoch(monkeypatch, epoch, batch=2):
    """Make the next run raise KeyboardInterrupt in the ``batch``-th batch of ``epoch``, as
    Ctrl-C would, in the middle of an epoch."""
    train_epoch = ColdMetaTrainerMixin._train_epoch

    def interrupted(self, train_data, epoch_idx, *args, **kwargs):
        if epoch_idx == epoch:
            loss, seen = self.model.calculate_loss, []

            def stop(interaction):
                seen.append(1)
                if len(seen) == batch:
                    raise KeyboardInterrupt
                return loss(interaction)

            self.model.calculate_loss = stop
        return train_epoch(self, train_data, epoch_idx, *args, **kwargs)

    monkeypatch.setattr(ColdMetaTrainerMixin, "_train_epoch", interrupted)


@pytest.mark.parametrize(
    "model, overrides",
    [("MeLU", {}), ("BPR", {"train_batch_size": 256}), ("CCML", CCML_SMALL)],
)
def test_interrupted_run_resumes_to_the_uninterrupted_result(
    model, overrides, tiny_config, tmp_path, trainers, monkeypatch
):
    config = {**tiny_config, **overrides, "epochs": 4}
    reference = run_coldmeta(model, "tiny", config_dict=config)
    with monkeypatch.context() as patch:
        _interrupt_in_epoch(patch, epoch=2)
        with pytest.raises(RunInterrupted) as stopped:
            run_coldmeta(model, "tiny", config_dict=config)
    assert stopped.value.epoch == 2 and stopped.value.resume_file.endswith("-last.pth")
    assert Path(stopped.value.resume_file).is_file()  # kept for the resume
    resumed = run_coldmeta(model, "tiny", config_dict=config, resume=stopped.value.resume_file)
    assert _without_timings(resumed) == _without_timings(reference)
    # bit for bit, not only to the 4 digits of the metrics
    first, _, last = trainers
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, last.model.state_dict()[key]), key
    assert last.train_loss_dict == {e: first.train_loss_dict[e] for e in (2, 3)}
    assert list((tmp_path / "saved").iterdir()) == []  # cleaned once the result is in


def test_resume_is_refused_for_a_phased_model(sequential_cold_config, tmp_path):
    fake = tmp_path / "x-last.pth"
    fake.write_bytes(b"")
    from recbole_coldmeta.utils import ConfigError

    with pytest.raises(ConfigError, match="cannot be resumed"):
        run_coldmeta("MML", "tiny", config_dict=sequential_cold_config, resume=str(fake))


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
