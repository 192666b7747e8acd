"""Resuming a killed run: the last-epoch checkpoint, every random stream training draws from,
and the interruption a signal turns into.

A last-epoch checkpoint (``<run checkpoint>-last.pth``, written by
:class:`~recbole_coldmeta.trainer.trainer.ColdMetaTrainerMixin` before each epoch after the
first) holds what RecBole's ``fit`` carries from one epoch to the next: model, optimizer,
early-stopping state, the best-model file's name, and the random states; a phased run's also
says where in its phases it was (``phase``, see :mod:`recbole_coldmeta.trainer.phased`). Of ours
it imports ``utils`` only.
"""

import os
import random
import warnings

import numpy as np
import torch

from recbole_coldmeta.utils import ConfigError

#: Marks a last-epoch checkpoint (``<run checkpoint>-last.pth``), the file ``--resume`` reads.
#: Format 2 added ``phase`` (``None`` for a run of one trainer).
RESUME_FORMAT = "recbole_coldmeta/last-epoch/2"
#: The formats :func:`read_resume_checkpoint` reads: format 1 is format 2 without ``phase``.
READABLE_FORMATS = ("recbole_coldmeta/last-epoch/1", RESUME_FORMAT)


def last_checkpoint_file(saved_model_file):
    """The last-epoch checkpoint beside a run's best-model checkpoint: ``<stem>-last.pth``."""
    stem, extension = os.path.splitext(saved_model_file)
    return f"{stem}-last{extension}"


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGINT/SIGTERM while training or testing; its checkpoints are kept.

    Args:
        epoch: the epoch in progress (``None`` when the trainer has no epochs).
        resume_file: the last-epoch checkpoint to pass to ``--resume`` (``None``: none written).
        phase: the phase in progress, in a phased run.
    """

    def __init__(self, epoch, resume_file, phase=None):
        self.epoch, self.resume_file, self.phase = epoch, resume_file, phase
        where = "" if epoch is None else f" in epoch {epoch}"
        if phase is not None:
            where = f" in phase {phase}" + ("" if epoch is None else f", epoch {epoch}")
        if resume_file is None:
            message = f"interrupted{where}, before a checkpoint to resume from was written"
        else:
            message = (
                f"interrupted{where}; checkpoint kept at {resume_file}; resume with the same "
                f"command and --resume={resume_file}"
            )
        super().__init__(message)


def _generators(train_data, model):
    """``(name, generator)`` of every ``torch.Generator`` the train loader and the model hold
    as attributes (the loader's shuffle generator, the task loader's ``task_generator``,
    CCML's ``sample_generator``, ...): the random streams that advance while training."""
    for name, value in vars(train_data).items():
        if isinstance(value, torch.Generator):
            yield f"train_data.{name}", value
    for module_name, module in model.named_modules():
        for name, value in vars(module).items():
            if isinstance(value, torch.Generator):
                yield f"model.{module_name}.{name}" if module_name else f"model.{name}", value


def rng_state(train_data, model):
    """Every random state that training draws from: torch's (CPU and CUDA), numpy's and
    Python's global RNGs and :func:`_generators`; plain tensors, lists and numbers only, so that
    ``torch.load(weights_only=True)`` reads it back."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, keys.tolist(), position, has_gauss, gauss],
        "python": random.getstate(),
        "generators": {name: g.get_state() for name, g in _generators(train_data, model)},
    }


def restore_rng_state(state, train_data, model):
    """Put back what :func:`rng_state` saved.

    Raises:
        ConfigError: the run's loader or model has other random streams than the saved run
            (another model configuration).
    """
    generators = dict(_generators(train_data, model))
    if set(generators) != set(state["generators"]):
        raise ConfigError(
            f"The checkpoint's random streams {sorted(state['generators'])} are not this run's "
            f"{sorted(generators)}: resume with the configuration the checkpoint was written with."
        )
    for name, generator in generators.items():
        generator.set_state(state["generators"][name].cpu())
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def read_resume_checkpoint(resume_file, config):
    """The last-epoch checkpoint at ``resume_file``, checked against the run's ``config``.

    NOTE: the file is the user's, so it is read with ``weights_only=True`` (no arbitrary
    pickles); a last-epoch checkpoint holds tensors, numbers and lists only. Any failure of
    ``torch.load`` means the same thing to the user, so every exception it raises becomes one
    ConfigError.

    Raises:
        ConfigError: the file is missing, is not a last-epoch checkpoint, was written by another
            model, dataset or seed, or has no epoch left to train under ``config['epochs']``.
    """
    shown = f"--resume={resume_file}"
    if not os.path.isfile(resume_file):
        raise ConfigError(
            f"{shown}: no such file; give the checkpoint an interrupted run named "
            f"(saved/<model>-...-last.pth)."
        )
    try:
        with warnings.catch_warnings():  # torch's remarks on a file that is not ours
            warnings.simplefilter("ignore")
            checkpoint = torch.load(str(resume_file), map_location="cpu", weights_only=True)
    except Exception:  # see NOTE
        checkpoint = None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") not in READABLE_FORMATS:
        raise ConfigError(
            f"{shown} is not a last-epoch checkpoint of recbole_coldmeta (a best-model "
            f"checkpoint cannot resume training); give the <...>-last.pth file an interrupted "
            f"run named."
        )
    for key in ("model", "dataset", "seed"):
        if str(checkpoint[key]) != str(config[key]):
            raise ConfigError(
                f"{shown} was written by a run with {key}={checkpoint[key]}, this run has "
                f"{key}={config[key]}; pass --{key}={checkpoint[key]} or another checkpoint."
            )
    epochs, of_what, raise_how = _epoch_budget(shown, checkpoint, config)
    if checkpoint["epoch"] + 1 >= epochs:
        raise ConfigError(
            f"{shown} holds epoch {checkpoint['epoch']}{of_what} and this run has epochs="
            f"{epochs}{of_what}: nothing is left to train; raise {raise_how} or drop --resume."
        )
    best_file = checkpoint["best_model_file"]
    if checkpoint["best_valid_result"] is not None and not os.path.isfile(best_file):
        raise ConfigError(
            f"{shown} needs its run's best-model checkpoint {best_file}, which is gone; "
            f"start the run again without --resume."
        )
    return checkpoint


def _epoch_budget(shown, checkpoint, config):
    """``(epochs, " of phase NAME" or "", what to raise)``: the epochs that the checkpoint's
    trainer runs under ``config``: the run's, or in a phased run its phase's (the selected
    epochs in a ``pretrain_refit`` refit).

    Raises:
        ConfigError: the phase the checkpoint was interrupted in is not in ``train_phases``, or
            the checkpoint's run refit its pre-training phases and this one does not (or the
            other way round).
    """
    progress = checkpoint.get("phase")
    if progress is None:
        return config["epochs"], "", "--epochs"
    if progress["pretrain_refit"] != config["pretrain_refit"]:
        raise ConfigError(
            f"{shown} was written by a run with pretrain_refit={progress['pretrain_refit']}, "
            f"this run has pretrain_refit={config['pretrain_refit']}; pass "
            f"--pretrain_refit={progress['pretrain_refit']} or another checkpoint."
        )
    name = progress["plan"][progress["position"]]
    if progress["refit_epochs"] is not None:
        return progress["refit_epochs"], f" of phase {name}'s refit", "--epochs"
    entries = [e for e in config["train_phases"] if isinstance(e, dict)]
    entry = next((e for e in entries if e.get("phase") == name), None)
    if entry is None:
        raise ConfigError(
            f"{shown} was interrupted in phase {name}, which this run's train_phases "
            f"({[e.get('phase') for e in entries]}) do not list; resume with the train_phases "
            f"the checkpoint was written with."
        )
    how = f"phase {name}'s epochs in train_phases" if "epochs" in entry else "--epochs"
    return entry.get("epochs", config["epochs"]), f" of phase {name}", how
