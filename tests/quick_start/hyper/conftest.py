"""Fixtures of the tuning tests: a params-file writer and spies on the dataset build."""

from pathlib import Path

import pytest

from recbole_coldmeta.quick_start.hyper import objective


@pytest.fixture
def write_params_file():
    """``write_params_file(text, name="melu.hyper")`` writes a params file, returns its path."""

    def write(text, name="melu.hyper"):
        path = Path(name)
        path.write_text(text)
        return str(path)

    return write


@pytest.fixture
def count_dataset_builds(monkeypatch):
    """Count calls to ``create_dataset`` made by the tuner."""
    calls = []
    original = objective.create_dataset

    def counting(config):
        calls.append(config["dataset"])
        return original(config)

    monkeypatch.setattr(objective, "create_dataset", counting)
    return calls


@pytest.fixture
def no_dataset(monkeypatch):
    """Fail the test if the tuner gets as far as building the dataset."""

    def refuse(config):
        raise AssertionError("the dataset was built before the input was checked")

    monkeypatch.setattr(objective, "create_dataset", refuse)
