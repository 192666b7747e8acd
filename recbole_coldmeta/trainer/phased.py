"""Phased training (cross-domain models, MML): a model's phases one after the other, each a fresh
RecBole trainer, and the resume of a phased run from the phase and epoch it was stopped in."""

import copy
import os

import torch
from recbole.data.interaction import cat_interactions

from recbole_coldmeta.data import build_dataloaders
from recbole_coldmeta.trainer.resume import RunInterrupted, read_resume_checkpoint
from recbole_coldmeta.trainer.trainer import ColdMetaTrainer
from recbole_coldmeta.utils import ConfigError


class PhasedTrainer(ColdMetaTrainer):
    """Runs a model's training phases one after the other (cross-domain models, MML).

    For each ``(phase, settings)`` of ``model.phase_plan`` (the ``train_phases`` YAML list): the
    model switches to the phase (``model.set_phase``), and a fresh RecBole trainer for the phase
    (:class:`PhaseTrainer`: the phase's epochs, learning rate, weight decay and early-stopping
    patience, an optimizer over ``model.phase_parameters(phase)``) runs RecBole's ``fit``, with
    its checkpoint and its best-model reload. A phase trains on its own train/valid datasets
    when the train dataset provides them (``train_data.dataset.phase_data[phase]``, as the
    cross-domain split does), else on the run's loaders. The last phase writes the run's
    checkpoint file, which ``evaluate(load_best_model=True)`` reloads, and is always selected on
    the run's ``valid_data``.

    Resume: every phase trainer writes the run's last-epoch checkpoint (``<run
    checkpoint>-last.pth``) before each of its epochs after the first, with the run's
    :attr:`phase_progress` in it: the phase plan, the position of the phase in it, the run's
    checkpoint name (the phases' files are named after it), ``pretrain_refit`` and a refit
    phase's state (its initial parameters, the epochs kept as the best so far, the selected
    epochs once its refit runs). :meth:`resume_checkpoint` puts the model's parameters back
    (the effect of every completed phase: each ended with its best-model reload); :meth:`fit`
    then skips the completed phases and continues the interrupted one from its epoch, with its
    optimizer, early-stopping state and random streams.

    NOTE: the cross-domain pre-training phases are selected on held-out interactions of their own
    domain; their bridge phase on the validation users.

    NOTE: the first epoch of a phase writes no checkpoint (as the first of any run): a run
    stopped there resumes from the previous phase's last epoch, which is repeated exactly.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.active = None  # the phase trainer that trains now
        self._resumed = None  # the last-epoch checkpoint fit continues from

    def resume_checkpoint(self, resume_file):
        """Continue the phased run that wrote ``resume_file``: the model's parameters now, the
        interrupted phase's trainer state when :meth:`fit` reaches that phase.

        Raises:
            ConfigError: see :func:`read_resume_checkpoint`; the checkpoint is not of a run with
                this run's phases; its parameters do not fit this run's model.
        """
        checkpoint = read_resume_checkpoint(resume_file, self.config)
        progress = checkpoint.get("phase")
        plan = [phase.value for phase, _ in self.model.phase_plan]
        if progress is None or progress["plan"] != plan:
            written = "one trainer" if progress is None else f"the phases {progress['plan']}"
            raise ConfigError(
                f"--resume={resume_file} was written by a run of {written}, this run trains "
                f"the phases {plan}; resume with the train_phases the checkpoint was written with."
            )
        self.restore_parameters(checkpoint, resume_file)
        self.saved_model_file = progress["run_model_file"]
        self.write_resume_checkpoints = True
        self._resumed = (checkpoint, resume_file)
        self.logger.info(
            f"Checkpoint loaded. Resume training from phase {plan[progress['position']]}, "
            f"epoch {checkpoint['epoch'] + 1}"
        )

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False,
            callback_fn=None):  # fmt: skip
        phase_data = getattr(train_data.dataset, "phase_data", {})
        resumed, self._resumed = self._resumed, None
        first = resumed[0]["phase"]["position"] if resumed else 0
        result = (None, None)
        for position, (phase, settings) in enumerate(self.model.phase_plan):
            if position < first:  # completed before the interruption: in the model's parameters
                continue
            last = position == len(self.model.phase_plan) - 1
            self.model.set_phase(phase)
            self.logger.info(f"[{type(self.model).__name__}] phase {phase.value}: {settings}")
            phase_file = self.saved_model_file.replace(".pth", f"-{phase.value}.pth")
            progress = resumed[0]["phase"] if resumed else self._new_progress(position)
            if last or phase not in phase_data:  # selected on the run's valid_data
                train_loader = train_data
                if phase in phase_data:  # the phase's own training rows
                    phase_train = phase_data[phase][0]
                    train_loader = build_dataloaders(phase_train.config, phase_train)[0]
                    train_loader.set_batch_size(settings["train_batch_size"])
                trainer = self.phase_trainer(phase, settings, self.config, progress)
                trainer.saved_model_file = self.saved_model_file if last else phase_file
                if resumed:
                    trainer.continue_from(*resumed)
                result = trainer.fit(
                    train_loader, valid_data, verbose, saved, show_progress, callback_fn
                )
            else:
                self._fit_on_phase_data(
                    phase, settings, phase_data[phase], phase_file, progress, resumed,
                    (verbose, saved, show_progress), callback_fn,
                )  # fmt: skip
            resumed = None
            if saved and not last:
                self._reload(phase_file)
        return result

    def _new_progress(self, position):
        """:attr:`phase_progress` at the start of the phase at ``position`` of the plan."""
        return {
            "plan": [phase.value for phase, _ in self.model.phase_plan],
            "position": position,
            "run_model_file": os.path.abspath(self.saved_model_file),
            "pretrain_refit": bool(self.config["pretrain_refit"]),
            "initial": None,
            "kept": [],
            "refit_epochs": None,
        }

    def _fit_on_phase_data(
        self, phase, settings, parts, phase_file, progress, resumed, flags, callback_fn
    ):
        """A phase with data of its own ``(train part, held-out part)``: early-stopped on the
        held-out rows; with ``pretrain_refit``, then trained again from the phase's initial
        parameters on all its rows for the selected number of epochs. ``resumed``: the
        ``(checkpoint, file)`` to continue the fit or the refit from (``progress`` says which)."""
        verbose, saved, progress_bar = flags
        phase_train, phase_valid = parts
        config = phase_valid.config
        refit = self.config["pretrain_refit"]
        if refit and progress["initial"] is None:
            progress["initial"] = [p.detach().clone() for p in self.model.phase_parameters(phase)]
        kept = progress["kept"]  # epochs RecBole kept as the best so far (its counter is then 0)
        if progress["refit_epochs"] is None:
            train_loader, valid_loader, _ = build_dataloaders(config, phase_train, phase_valid)
            train_loader.set_batch_size(settings["train_batch_size"])
            trainer = self.phase_trainer(phase, settings, config, progress)
            trainer.saved_model_file = phase_file
            if resumed:
                trainer.continue_from(*resumed)
                resumed = None

            def track(epoch, score):
                if trainer.cur_step == 0:
                    kept.append(epoch)
                if callback_fn:
                    callback_fn(epoch, score)

            trainer.fit(train_loader, valid_loader, verbose, saved, progress_bar, track)
            if not refit or not kept:
                return
            progress["refit_epochs"] = kept[-1] + 1
            with torch.no_grad():
                parameters = self.model.phase_parameters(phase)
                for parameter, start in zip(parameters, progress["initial"]):
                    parameter.copy_(start)
        epochs = progress["refit_epochs"]
        self.logger.info(f"[{phase.value}] refit on all {len(phase_train) + len(phase_valid)} "
                         f"rows for the selected {epochs} epochs")  # fmt: skip
        every_row = phase_train.copy(
            cat_interactions([phase_train.inter_feat, phase_valid.inter_feat])
        )
        refit_loader = build_dataloaders(config, every_row)[0]
        refit_loader.set_batch_size(settings["train_batch_size"])
        refit_trainer = self.phase_trainer(phase, {**settings, "epochs": epochs}, config, progress)
        refit_trainer.saved_model_file = phase_file
        if resumed:
            refit_trainer.continue_from(*resumed)
        refit_trainer.fit(refit_loader, None, verbose, saved, progress_bar)

    def phase_trainer(self, phase, settings, base_config, progress):
        """A fresh RecBole trainer for one phase: built on ``base_config`` with the phase's
        settings (epochs, learning rate, ...) on top, optimizing ``phase_parameters(phase)``,
        writing the run's last-epoch checkpoint with ``progress`` in it."""
        config = copy.copy(base_config)
        config.final_config_dict = {**base_config.final_config_dict, **settings}
        trainer = PhaseTrainer(config, self.model, phase, self.last_checkpoint_file)
        trainer.write_resume_checkpoints = self.write_resume_checkpoints
        trainer.phase_progress = progress
        trainer.run_config = self.config
        self.active = trainer
        return trainer

    def interrupted(self):
        if self.active is None:  # stopped before the first phase trained
            return super().interrupted()
        stopped = self.active.interrupted()
        return RunInterrupted(stopped.epoch, stopped.resume_file, self.active.phase.value)


class PhaseTrainer(ColdMetaTrainer):
    """One phase of :class:`PhasedTrainer`: RecBole's ``Trainer`` whose optimizer covers only the
    phase's parameters (``model.phase_parameters(phase)``); every other field is RecBole's own
    initial state, so nothing of an earlier phase carries over. Its last-epoch checkpoint is the
    run's (``run_last_checkpoint_file``)."""

    def __init__(self, config, model, phase, run_last_checkpoint_file):
        self.phase = phase
        self.trained_parameters = model.phase_parameters(phase)
        self.run_last_checkpoint_file = run_last_checkpoint_file
        super().__init__(config, model)

    @property
    def last_checkpoint_file(self):
        return self.run_last_checkpoint_file

    def _build_optimizer(self, **kwargs):
        kwargs.setdefault("params", self.trained_parameters)
        return super()._build_optimizer(**kwargs)
