"""Checkpoint save / reload through our trainer wrapper (torch >= 2.6 weights_only default)."""

import torch
from recbole.trainer import Trainer

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.registry import get_model, get_trainer
from recbole_coldmeta.trainer import ColdMetaTrainerMixin, load_own_checkpoint


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
    _, trainer, train_data, valid_data, _ = _setup(tiny_config)
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    _, resumed, *_ = _setup(tiny_config)
    resumed.resume_checkpoint(trainer.saved_model_file)
    saved = load_own_checkpoint(trainer.saved_model_file, "cpu")
    assert resumed.start_epoch == saved["epoch"] + 1
    assert resumed.best_valid_score == trainer.best_valid_score
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, saved["state_dict"][key])


def test_two_trainers_started_together_never_share_a_checkpoint_file(tiny_config):
    config, trainer, *_ = _setup(tiny_config)
    others = [type(trainer)(config, trainer.model) for _ in range(2)]
    assert len({t.saved_model_file for t in [trainer, *others]}) == 3
