"""Trainers: RecBole's, with what the cold-start protocol and today's torch need.

Every trainer this package hands out, for our models and RecBole's built-ins alike, is a RecBole
trainer with :class:`ColdMetaTrainerMixin` in front.
"""

import contextlib
import functools
import os
import uuid
import warnings

import torch
from recbole.trainer import Trainer
from recbole.utils import dict2str, early_stopping, set_color
from torch.nn.parallel import DistributedDataParallel

from recbole_coldmeta.evaluator import ColdCollector
from recbole_coldmeta.trainer.resume import (
    RESUME_FORMAT,
    RunInterrupted,
    last_checkpoint_file,
    read_resume_checkpoint,
    restore_rng_state,
    rng_state,
)
from recbole_coldmeta.utils import ConfigError, as_single_process
from recbole_coldmeta.utils.atomic import atomic_path

#: RecBole's ``_train_epoch`` builds a ``torch.cuda.amp.GradScaler`` every epoch, which torch
#: >= 2.4 answers with this FutureWarning even on CPU (where the scaler is disabled anyway).
GRAD_SCALER_DEPRECATION = r"`torch\.cuda\.amp\.GradScaler\(args\.\.\.\)` is deprecated"


def load_own_checkpoint(checkpoint_file, device):
    """Load a checkpoint that a RecBole trainer of this process wrote.

    NOTE: RecBole 1.2.1 pickles the whole Config into its checkpoints (pickle protocol 4) and
    reloads them with ``torch.load``'s default, which torch 2.6 changed to ``weights_only=True``;
    that unpickler rejects protocol 4 and the Config object ("Unsupported operand 149"), so the
    best-model reload at the end of every RecBole run fails (the root cause of RecBole issue
    #2212, reported there for NeuMF.load_pretrain; Trainer.evaluate is unfixed in 1.2.1). The
    file is one this trainer just wrote, so it is trusted and loaded with ``weights_only=False``:
    here, for this call only, not through the process-wide ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``.
    """
    return torch.load(str(checkpoint_file), map_location=device, weights_only=False)


class ColdMetaTrainerMixin:
    """Put in front of any RecBole trainer.

    - reloads its own checkpoints through :func:`load_own_checkpoint` (torch >= 2.6);
    - collects each evaluated row's user, for per-user value metrics such as ``QueryNDCG``;
    - calls the model's ``on_epoch_start(epoch)`` hook, if it has one, before each epoch;
    - trains data-parallel on CPU (gloo) as well as on GPUs (see :meth:`__init__`);
    - writes every checkpoint atomically (a temporary name, then a rename);
    - with ``write_resume_checkpoints`` set, writes the state before each epoch after the first
      to :attr:`last_checkpoint_file`, which :meth:`resume_checkpoint` continues from, to the
      bit the run that was not interrupted;
    - keeps RecBole's per-epoch ``torch.cuda.amp.GradScaler`` FutureWarning quiet;
    - :meth:`remove_checkpoints` deletes the run's files once its result is in.
    """

    #: Whether a run of this trainer can be continued from a last-epoch checkpoint.
    resumable = True

    def __init__(self, config, model):
        # NOTE: RecBole's trainer wraps the model in DistributedDataParallel with
        # device_ids=[local_rank], which torch refuses for a CPU model. On CPU the wrap is done
        # here instead (no device ids; no buffer broadcast: our buffers are data tables that every
        # process builds identically). RecBole's training loop then runs unchanged: it sets up
        # DDP's gradient hooks each step, so every process's meta-gradient (the mean query loss
        # over its share of the tasks) is averaged before the optimizer step.
        cpu_parallel = not config["single_spec"] and config["device"].type == "cpu"
        # NOTE: RecBole's ensure_dir checks, then creates: processes of one run building their
        # trainers at the same moment race on it (FileExistsError). Created here first, safely.
        os.makedirs(config["checkpoint_dir"], exist_ok=True)
        with as_single_process(config) if cpu_parallel else contextlib.nullcontext():
            super().__init__(config, model)
        if cpu_parallel:
            self.distributed_model = DistributedDataParallel(self.model, forward_sync_buffers=False)
        self.eval_collector = ColdCollector(config)
        # NOTE: RecBole names the checkpoint <model>-<local time to the second>.pth, so two runs of
        # one model started in the same second (parallel benchmarks, tuning trials) overwrite and
        # reload each other's file; a process id and a random suffix make the name unique. In a
        # data-parallel run rank 0 writes it and every rank reloads it: rank 0's name is shared.
        stem, extension = os.path.splitext(self.saved_model_file)
        name = [f"{stem}-{os.getpid()}-{uuid.uuid4().hex[:8]}{extension}"]
        if not config["single_spec"]:
            torch.distributed.broadcast_object_list(name, src=0)
        self.saved_model_file = name[0]
        self.write_resume_checkpoints = False
        self.current_epoch = None
        self._resumed_rng_state = None
        #: What a phased run carries between its phases (see ``trainer.phased``), saved in the
        #: last-epoch checkpoint; ``None`` for a run of one trainer.
        self.phase_progress = None
        #: The run's config, whose model, dataset and seed a last-epoch checkpoint names (a
        #: phase of a cross-domain run trains on a config of its domain).
        self.run_config = config

    @property
    def last_checkpoint_file(self):
        """Where the state before the latest epoch is kept (``<saved_model_file stem>-last``)."""
        return last_checkpoint_file(self.saved_model_file)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        # NOTE: the state "before epoch k" is what RecBole's fit holds between epochs k-1 and k
        # (model, optimizer, early-stopping counters, every random stream); it is saved here,
        # the first thing of epoch k, and a resumed run puts it back at the same place, so
        # epoch k and everything after it repeat exactly.
        self.current_epoch = epoch_idx
        if self._resumed_rng_state is not None:
            restore_rng_state(self._resumed_rng_state, train_data, self.model)
            self._resumed_rng_state = None
        elif self.write_resume_checkpoints and epoch_idx > self.start_epoch:
            self._save_last_checkpoint(train_data, epoch_idx)
        if hasattr(self.model, "on_epoch_start"):
            self.model.on_epoch_start(epoch_idx)
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=GRAD_SCALER_DEPRECATION, category=FutureWarning
            )
            return super()._train_epoch(train_data, epoch_idx, loss_func, show_progress)

    def _save_last_checkpoint(self, train_data, epoch_idx):
        state = {
            "format": RESUME_FORMAT,
            "model": self.run_config["model"],
            "dataset": self.run_config["dataset"],
            "seed": self.run_config["seed"],
            "epoch": epoch_idx - 1,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "best_valid_result": None
            if self.best_valid_result is None
            else {key: float(value) for key, value in self.best_valid_result.items()},
            "best_model_file": os.path.abspath(self.saved_model_file),
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_state(train_data, self.model),
            "phase": self.phase_progress,
        }
        with atomic_path(self.last_checkpoint_file) as temporary:
            torch.save(state, temporary)

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        target = kwargs.pop("saved_model_file", self.saved_model_file)
        with atomic_path(target) as temporary:
            super()._save_checkpoint(epoch, verbose=False, saved_model_file=temporary, **kwargs)
        if verbose and os.path.exists(target):
            self.logger.info(set_color("Saving current", "blue") + f": {target}")

    def _reload(self, checkpoint_file):
        """Restore the model from a checkpoint this run wrote (rank 0, in a data-parallel run)."""
        if not self.config["single_spec"]:
            torch.distributed.barrier()  # rank 0 has finished writing it
        self._restore_model(load_own_checkpoint(checkpoint_file, self.device))

    def _restore_model(self, checkpoint):
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            self._reload(checkpoint_file)
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    def resume_checkpoint(self, resume_file):
        """Continue the run that wrote the last-epoch checkpoint ``resume_file``
        (:meth:`continue_from`); ``fit`` then starts at the epoch it was interrupted in.

        Raises:
            ConfigError: see :func:`read_resume_checkpoint` and :meth:`continue_from`.
        """
        self.continue_from(read_resume_checkpoint(resume_file, self.config), resume_file)
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")

    def continue_from(self, checkpoint, resume_file):
        """Put back a last-epoch checkpoint read from ``resume_file``: its model, optimizer,
        early-stopping state and best-model file now; its random streams at the start of the
        next epoch (:meth:`_train_epoch`).

        Raises:
            ConfigError: the checkpoint's parameters do not fit this trainer's model or
                optimizer (another model configuration).
        """
        self.restore_parameters(checkpoint, resume_file, self.optimizer)
        self.saved_model_file = checkpoint["best_model_file"]
        self.start_epoch = checkpoint["epoch"] + 1
        self.cur_step = checkpoint["cur_step"]
        self.best_valid_score = checkpoint["best_valid_score"]
        self.best_valid_result = checkpoint["best_valid_result"]
        self._resumed_rng_state = checkpoint["rng"]
        self.write_resume_checkpoints = True

    def restore_parameters(self, checkpoint, resume_file, optimizer=None):
        """The checkpoint's model parameters into the model (and its optimizer state into
        ``optimizer``); a mismatch is one ConfigError naming ``resume_file``."""
        try:
            self._restore_model(checkpoint)
            if optimizer is not None:
                optimizer.load_state_dict(checkpoint["optimizer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise ConfigError(
                f"--resume={resume_file} does not fit this run's model ({str(error)[:200]}); "
                f"resume with the configuration the checkpoint was written with."
            ) from None

    def interrupted(self):
        """The :class:`RunInterrupted` to raise when a signal stops this trainer's run."""
        resume_file = self.last_checkpoint_file if self.write_resume_checkpoints else None
        if resume_file is not None and not os.path.isfile(resume_file):
            resume_file = None
        return RunInterrupted(self.current_epoch, resume_file)

    def remove_checkpoints(self, keep_best=False):
        """Delete the files this run's checkpoints went to: the last-epoch file, the phases'
        files and, unless ``keep_best``, the best-model file (rank 0 of a data-parallel run,
        once every rank is done with them)."""
        if not self.config["single_spec"]:
            torch.distributed.barrier()
            if self.config["local_rank"] != 0:
                return
        folder, name = os.path.split(self.saved_model_file)
        stem, extension = os.path.splitext(name)
        if not os.path.isdir(folder or "."):
            return
        for entry in os.listdir(folder or "."):
            own = entry.startswith(f"{stem}-") and entry.endswith(extension)
            if own or (entry == name and not keep_best):
                os.remove(os.path.join(folder, entry))


@functools.cache
def with_compat(trainer_class):
    """``trainer_class`` with :class:`ColdMetaTrainerMixin` in front (unchanged if it has it)."""
    if issubclass(trainer_class, ColdMetaTrainerMixin):
        return trainer_class
    return type(trainer_class.__name__, (ColdMetaTrainerMixin, trainer_class), {})


#: RecBole's general Trainer with the mixin: the trainer of our models.
ColdMetaTrainer = with_compat(Trainer)


class StatisticTrainer(ColdMetaTrainer):
    """Fits a closed-form model once per candidate setting and keeps the best on validation.

    For each of ``model.candidate_settings()``, in order: ``model.fit_setting(setting)``, one
    evaluation on ``valid_data`` (RecBole's ``_valid_epoch``) and RecBole's ``early_stopping``
    rule, with ``valid_metric_bigger``, to decide whether it is the best so far (a later setting
    that ties the best replaces it, as a later epoch does in RecBole's ``fit``). The best is saved
    as RecBole saves an epoch (``_save_checkpoint``, the setting's position as the epoch), so
    ``evaluate(load_best_model=True)`` reloads it, and is fitted again at the end, so the model
    in memory is the selected one too. Returns ``(best_valid_score, best_valid_result)`` as
    RecBole's ``fit`` does.

    NOTE: the train loader is never iterated: the models read their statistics from the train
    dataset when they are built, so RecBole's epochs over it (a fake loss) would only cost time.
    Every setting is tried (no early stop); without ``valid_data`` the first one is kept. There
    are no epochs to resume from (``resumable`` is False): an interrupted fit is started again.
    """

    resumable = False

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False,
            callback_fn=None):  # fmt: skip
        self.eval_collector.data_collect(train_data)
        settings = self.model.candidate_settings()
        best = settings[0]
        if not valid_data:  # nothing to select on
            self.model.fit_setting(best)
            if saved:
                self._save_checkpoint(0, verbose=verbose)
            return self.best_valid_score, self.best_valid_result
        for position, setting in enumerate(settings):
            self.model.fit_setting(setting)
            score, result = self._valid_epoch(valid_data, show_progress=show_progress)
            self.best_valid_score, _, _, update = early_stopping(
                score, self.best_valid_score, 0, len(settings), self.valid_metric_bigger
            )
            if verbose:
                self.logger.info(
                    set_color(f"setting {setting}", "green")
                    + f" [valid_score: {score:f}]: "
                    + dict2str(result)
                )
            if update:
                best, self.best_valid_result = setting, result
                if saved:
                    self._save_checkpoint(position, verbose=verbose)
            if callback_fn:
                callback_fn(position, score)
        self.model.fit_setting(best)
        return self.best_valid_score, self.best_valid_result
