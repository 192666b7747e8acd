"""recbole_coldmeta's Config: RecBole's Config with our properties layered on top.

Precedence, lowest first: RecBole's own properties (overall, model, dataset, quick-start files),
then ours (``properties/overall.yaml``, ``properties/model/<Model>.yaml``,
``properties/dataset/<dataset>.yaml``), then config files, then ``config_dict``, then the command
line — the same order RecBole uses for its own layers.
"""

import difflib
import os
import re

import yaml
from recbole.config import Config as RecBoleConfig
from recbole.utils import ModelType

import recbole_coldmeta.evaluator  # noqa: F401  (registers our metrics before Config checks names)
from recbole_coldmeta.config.checks import check_config, run_declarations
from recbole_coldmeta.registry import get_model
from recbole_coldmeta.utils import ConfigError, properties_dir
from recbole_coldmeta.utils.config_keys import known_config_keys

#: The dataset used when none is given: RecBole's wheel ships it, so no download is needed.
DEFAULT_DATASET = "ml-100k"

_CMD_ARG = re.compile(r"^--([A-Za-z_][A-Za-z0-9_.\-]*)=(.*)$", re.S)


def parse_cmd_overrides(args) -> dict:
    """``['--epochs=1', '--seed=7']`` -> ``{'epochs': '1', 'seed': '7'}`` (values stay strings).

    Raises:
        ConfigError: an argument is not of the form ``--key=value``.
    """
    overrides = {}
    for arg in args:
        match = _CMD_ARG.match(arg)
        if match is None:
            raise ConfigError(
                f"Cannot read command-line argument '{arg}': overrides are written --key=value "
                f"(e.g. --epochs=1 --learning_rate=0.01)."
            )
        key, value = match.groups()
        if key in overrides and overrides[key] != value:
            raise ConfigError(f"--{key} is given twice with different values.")
        overrides[key] = value
    return overrides


class Config(RecBoleConfig):
    """RecBole's Config plus recbole_coldmeta's properties, defaults and input checks.

    Args:
        model (str or type, optional): model name or class; a name is looked up in this package
            first, then in RecBole.
        dataset (str, optional): dataset name; defaults to ``ml-100k``.
        config_file_list (list of str, optional): YAML files, later ones win.
        config_dict (dict, optional): parameters, winning over the files.
        cmd_args (list of str, optional): ``--key=value`` overrides, winning over everything.

    NOTE: RecBole's Config reads ``sys.argv`` itself; a library must not (pytest's or a notebook's
    arguments would leak into the model). Here only ``cmd_args`` is read, and only the entry
    points pass it.

    NOTE: a key that neither RecBole nor this package defines is an error with a spelling hint
    (RecBole silently returns ``None`` for it). Set ``allow_unknown_config_keys: True`` for keys
    that your own code reads.

    NOTE: every value is checked against the type and range its properties line declares
    (:mod:`recbole_coldmeta.config.checks`) once the config is assembled, before RecBole's own
    checks and before any data loads; the first bad value is one :class:`ConfigError` line.
    """

    def __init__(
        self, model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None
    ):
        self._cmd_args = list(cmd_args or [])
        config_file_list = self._check_config_files(config_file_list)
        super().__init__(model, dataset, config_file_list, config_dict)

    @staticmethod
    def _check_config_files(config_file_list):
        if isinstance(config_file_list, str):
            config_file_list = config_file_list.replace(",", " ").split()
        for file in config_file_list or []:
            if not os.path.isfile(file):
                raise ConfigError(
                    f"Config file '{file}' does not exist (working directory: {os.getcwd()}). "
                    f"Fix the path given to --config_files."
                )
            try:
                with open(file, encoding="utf-8") as f:
                    content = yaml.safe_load(f)
            except yaml.YAMLError as error:
                raise ConfigError(f"Config file '{file}' is not valid YAML: {error}") from None
            if content is not None and not isinstance(content, dict):
                raise ConfigError(
                    f"Config file '{file}' must hold a mapping of key: value lines, "
                    f"not a {type(content).__name__}."
                )
        return config_file_list

    def _load_config_files(self, file_list):
        config = super()._load_config_files(file_list)
        self._config_file_of_key = {}
        for file in file_list or []:
            with open(file, encoding="utf-8") as f:
                for key in yaml.safe_load(f) or {}:
                    self._config_file_of_key[key] = file
        return config

    def _merge_external_config_dict(self):
        super()._merge_external_config_dict()
        block = self.external_config_dict.get("target_domain")
        if block is None:
            return
        if not isinstance(block, dict):
            raise ConfigError(
                f"target_domain must be a mapping, e.g. target_domain: {{dataset: "
                f"amazon-dense-movies}}; got {block!r}."
            )
        for key, value in block.items():
            if key in self.external_config_dict and self.external_config_dict[key] != value:
                raise ConfigError(
                    f"{key} is set both at top level ({self.external_config_dict[key]!r}) and in "
                    f"target_domain ({value!r}); set it in one place."
                )
            self.external_config_dict[key] = value

    def _load_cmd_line(self):
        # NOTE: ``--key=~`` (or ``null``) is None, as in a YAML file; RecBole's eval-based
        # conversion would keep the string '~'.
        overrides = {
            key: None if value in ("~", "null") else value
            for key, value in parse_cmd_overrides(self._cmd_args).items()
        }
        return self._convert_config_dict(overrides)

    def _get_model_and_dataset(self, model, dataset):
        if model is None:
            model = self.external_config_dict.get("model")
        if model is None:
            raise ConfigError(
                "No model given: pass --model=NAME (e.g. --model=MeLU or --model=BPR)."
            )
        if dataset is None:
            dataset = self.external_config_dict.get("dataset", DEFAULT_DATASET)
        return super()._get_model_and_dataset(get_model(model), dataset)

    def _load_internal_config_dict(self, model, model_class, dataset):
        super()._load_internal_config_dict(model, model_class, dataset)
        ours = properties_dir()
        protocols = [ours / "protocol" / f"{p}.yaml" for p in getattr(model_class, "protocols", ())]
        self._property_files = [
            file
            for file in (
                ours / "overall.yaml",
                *protocols,
                ours / "model" / f"{model}.yaml",
                ours / "dataset" / f"{dataset}.yaml",
            )
            if file.is_file()
        ]
        for file in self._property_files:
            config_dict = self._update_internal_config_dict(str(file)) or {}
            if file.parent.name == "dataset":
                self.parameters["Dataset"] += [
                    key for key in config_dict if key not in self.parameters["Dataset"]
                ]

    @property
    def declarations(self):
        """``{key: Declaration}``: the type and accepted values of every declared key of this
        run (:func:`~recbole_coldmeta.config.checks.run_declarations` of its property files)."""
        return run_declarations(self._property_files)

    def _set_default_parameters(self):
        # The assembled config is checked here, before RecBole's own checks (which end in
        # tracebacks) and before anything reads it.
        self._check_unknown_keys()
        check_config(
            self.final_config_dict,
            self.declarations,
            keys_first=self.external_config_dict,
            origin=self._origin,
        )
        # NOTE: RecBole 1.2.1's overall.yaml samples a training negative per positive, which its own
        # sequential models with loss_type CE then reject ("train_neg_sample_args should be None"),
        # so `run_recbole --model=SASRec` fails out of the box. Full-softmax CE needs no negatives:
        # drop them unless the user asked for them.
        final = self.final_config_dict
        # Whether the model trains on task batches and adapts on support rows (a meta-learner):
        # the data layer chooses its loaders by it, as RecBole's does by MODEL_TYPE.
        final["MODEL_TASK_BATCHES"] = bool(getattr(self.model_class, "task_batches", False))
        if (
            final.get("MODEL_TYPE") == ModelType.SEQUENTIAL
            and final.get("loss_type") == "CE"
            and "train_neg_sample_args" not in self.external_config_dict
        ):
            final["train_neg_sample_args"] = None
        # NOTE: the cold-start protocol's MeLU user filter ([13,100] ratings) is not part of the
        # cross-domain protocol (PTUPCDR keeps every user): with a source domain it is off unless
        # the user sets it.
        if (
            final.get("source_domain") is not None
            and "user_inter_num_interval" not in self.external_config_dict
        ):
            final["user_inter_num_interval"] = None
        super()._set_default_parameters()

    def _init_device(self):
        """RecBole's device set-up (:meth:`_init_process_device`); ``use_gpu`` says whether CUDA is.

        NOTE: RecBole logs ``use_gpu = True`` on a machine without CUDA; it is False there, so the
        config dump names the device the run uses (RecBole's trainer already reads
        ``use_gpu and torch.cuda.is_available()``, so nothing else changes).
        """
        self._init_process_device()
        import torch

        if not torch.cuda.is_available():
            self.final_config_dict["use_gpu"] = False

    def _init_process_device(self):
        """RecBole's device set-up, plus data-parallel runs on CPU.

        NOTE: RecBole 1.2.1 starts every distributed run (``local_rank`` set by the launcher)
        with the nccl backend and one CUDA device per process. When ``dist_backend`` is
        ``gloo`` (the default when CUDA is unavailable) this starts the process group with gloo
        on CPU instead: rank ``local_rank + offset`` of ``world_size``, rendezvous at
        ``tcp://ip:port``; otherwise RecBole's own set-up runs. A process group that already
        exists (a second Config in the same process) is reused.
        """
        final = self.final_config_dict
        backend = final.get("dist_backend")
        if backend not in (None, "nccl", "gloo"):
            raise ConfigError(f"dist_backend must be nccl or gloo (or None), got {backend!r}.")
        if "local_rank" not in final:
            return super()._init_device()
        import torch
        import torch.distributed as dist

        if backend is None:
            backend = "nccl" if torch.cuda.is_available() and str(final["gpu_id"]) else "gloo"
        if backend == "nccl":
            return super()._init_device()
        for key in ("world_size", "ip", "port", "offset"):
            if final.get(key) is None:
                raise ConfigError(
                    f"A distributed run needs {key}: start it with run_recbole_coldmeta.py "
                    f"--nproc=N (and --world_size/--ip/--port/--group_offset across machines)."
                )
        if not dist.is_initialized():
            dist.init_process_group(
                backend="gloo",
                rank=final["local_rank"] + final["offset"],
                world_size=final["world_size"],
                init_method=f"tcp://{final['ip']}:{final['port']}",
            )
        final["device"] = torch.device("cpu")
        final["single_spec"] = False
        final["gpu_id"] = str(final["gpu_id"])
        if final["local_rank"] != 0:
            final["state"] = "error"
            final["show_progress"] = False
            final["verbose"] = False

    def _origin(self, key):
        where = self._config_file_of_key.get(key)
        return f" (from config file '{where}')" if where else ""

    def _check_unknown_keys(self):
        if self.final_config_dict.get("allow_unknown_config_keys"):
            return
        known = known_config_keys() | set(self.internal_config_dict)
        for key in self.external_config_dict:
            if key in known:
                continue
            where = self._config_file_of_key.get(key)
            source = f"config file '{where}'" if where else "the command line or config_dict"
            close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.75)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(
                f"Unknown config key '{key}' (from {source}).{hint} Fix the spelling; if your "
                f"own code reads this key, set allow_unknown_config_keys: True."
            )
