"""Checkpoint save / reload through our trainer wrapper (torch >= 2.6 weights_only default)."""

import os
import warnings

import pytest
import torch
from recbole.trainer import Trainer

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.registry import get_model, get_trainer
from recbole_coldmeta.trainer import ColdMetaTrainerMixin, load_own_checkpoint
from recbole_coldmeta.utils import ConfigError


def _setup(tiny_config, epochs=2):
    config = build_config("BPR", "tiny", config_dict={**tiny_config, "epochs": epochs})
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    model = get_model("BPR")(config, train_data.dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "BPR")(config, model)
    return config, trainer, train_data, valid_data, test_data


def test_recbole_trainer_is_wrapped():
    trainer_class = get_trainer(None, "BPR")
    assert issubclass(trainer_class, ColdMetaTrainerMixin) and issubclass(trainer_class, Trainer)
    assert get_trainer(None, "BPR") is trainer_class


def test_train_save_reload_evaluate(tiny_config):
    _, trainer, train_data, valid_data, test_data = _setup(tiny_config)
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    best = load_own_checkpoint(trainer.saved_model_file, "cpu")["state_dict"]
    reference = trainer.evaluate(test_data, load_best_model=True)
    with torch.no_grad():
        for parameter in trainer.model.parameters():
            parameter.add_(1.0)
    assert trainer.evaluate(test_data, load_best_model=False) != reference
    assert trainer.evaluate(test_data, load_best_model=True) == reference
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, best[key])


def test_resume_checkpoint_restores_training_state(tiny_config):
    config, trainer, train_data, valid_data, _ = _setup(tiny_config, epochs=3)
    trainer.write_resume_checkpoints = True
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    saved = torch.load(trainer.last_checkpoint_file, weights_only=True)  # no pickled objects
    assert saved["epoch"] == 1  # the state before the last epoch, 2
    _, resumed, *_ = _setup(tiny_config, epochs=3)
    resumed.resume_checkpoint(trainer.last_checkpoint_file)
    assert resumed.start_epoch == 2 and resumed.saved_model_file == trainer.saved_model_file
    assert resumed.best_valid_score == saved["best_valid_score"]
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, saved["state_dict"][key])


def test_a_best_model_checkpoint_is_not_a_resume_checkpoint(tiny_config):
    _, trainer, train_data, valid_data, _ = _setup(tiny_config)
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    _, resumed, *_ = _setup(tiny_config)
    with pytest.raises(ConfigError, match="is not a last-epoch checkpoint"):
        resumed.resume_checkpoint(trainer.saved_model_file)


def test_training_on_cpu_shows_no_grad_scaler_warning(tiny_config):
    _, trainer, train_data, valid_data, _ = _setup(tiny_config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    assert not [w for w in caught if "GradScaler" in str(w.message)]


def test_checkpoints_are_written_atomically_and_removed_with_the_run(tiny_config, tmp_path):
    _, trainer, train_data, valid_data, _ = _setup(tiny_config, epochs=3)
    trainer.write_resume_checkpoints = True
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    folder = tmp_path / "saved"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        [os.path.basename(trainer.saved_model_file), os.path.basename(trainer.last_checkpoint_file)]
    )  # no temporary file left behind
    trainer.remove_checkpoints(keep_best=True)
    assert [p.name for p in folder.iterdir()] == [os.path.basename(trainer.saved_model_file)]
    trainer.remove_checkpoints()
    assert list(folder.iterdir()) == []


def test_two_trainers_started_together_never_share_a_checkpoint_file(tiny_config):
    config, trainer, *_ = _setup(tiny_config)
    others = [type(trainer)(config, trainer.model) for _ in range(2)]
    assert len({t.saved_model_file for t in [trainer, *others]}) == 3
