"""Train and evaluate one model, plugin or RecBole built-in, and return a JSON-ready result."""

import copy
import json
import math
import os
import pickle
import sys
import tempfile
import time
from logging import getLogger

import torch
from recbole.utils import init_logger, init_seed, set_color

from recbole_coldmeta.config import Config
from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.data.manifest import manifest_file
from recbole_coldmeta.quick_start.kshot import check_shots_config, shot_results, shot_users
from recbole_coldmeta.quick_start.user_results import user_rows, users_file, write_user_results
from recbole_coldmeta.registry import get_model, get_trainer
from recbole_coldmeta.trainer.resume import read_resume_checkpoint
from recbole_coldmeta.utils import ColdMetaError, ConfigError
from recbole_coldmeta.utils.atomic import atomic_write_text, check_writable_dir


def plain(value):
    """Metric values as JSON numbers (``None`` for NaN/inf, which JSON cannot hold)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_config(model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None):
    """Config, seeded RNGs and RecBole's logger, as every run starts."""
    config = Config(model, dataset, config_file_list, config_dict, cmd_args)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    return config


def build_model_and_trainer(config, train_dataset, state_dict=None):
    """The run's model, seeded as RecBole seeds it, on ``config``'s device, and its trainer.

    Args:
        config: the run's Config.
        train_dataset: the train split (models read their data tables from it).
        state_dict: parameters to load (a model trained on another split of the same data).

    Returns:
        tuple: ``(model, trainer)``.
    """
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_dataset)
    if state_dict is not None:
        model.load_state_dict(state_dict)
    model = model.to(config["device"])
    return model, get_trainer(config["MODEL_TYPE"], config["model"])(config, model)


def run_coldmeta(
    model=None,
    dataset=None,
    config_file_list=None,
    config_dict=None,
    cmd_args=None,
    saved=True,
    resume=None,
):
    """Train ``model`` on ``dataset``, select it on validation data, evaluate it on test data.

    Args:
        model (str or type): a recbole_coldmeta or RecBole model name (or class).
        dataset (str): dataset name; ``ml-100k`` (bundled with RecBole) when omitted.
        config_file_list (list of str): YAML config files.
        config_dict (dict): parameter overrides.
        cmd_args (list of str): ``--key=value`` overrides, highest precedence.
        saved (bool): save the best checkpoint and reload it before testing.
        resume (str): a last-epoch checkpoint (``<checkpoint>-last.pth``) of an interrupted run
            of the same command: training continues from it to the result the uninterrupted
            run would have given.

    Returns:
        dict: ``model``, ``dataset``, ``seed``, ``best_valid_score``, ``valid_result``,
        ``test_result``, ``train_seconds``, ``test_seconds`` (the test evaluation, checkpoint
        reload included) and, on the cold-start split, ``split`` (user and
        interaction counts of its parts), ``split_sha256`` and ``split_manifest`` (a
        :class:`~recbole_coldmeta.data.manifest.SplitManifest`, the one value that is not JSON:
        :func:`write_result` writes it beside the result); metric values are plain floats. With
        ``user_results``, ``user_results`` holds every evaluated user's metrics on the test
        and validation users (:func:`~recbole_coldmeta.quick_start.user_results.user_rows`;
        :func:`write_result` puts them in a file of their own). With
        ``also_test_states``, ``state_results`` and ``state_splits`` hold the metrics and split
        counts of ``test_state`` and of each further state (the same trained model). With
        ``shots``, ``shot_results``, ``shot_users``, ``shot_refit`` and ``shot_seconds``
        (:func:`~recbole_coldmeta.quick_start.kshot.shot_results`, on ``test_state``).

    Raises:
        ColdMetaError: before any data loads for a bad configuration, an unwritable
            ``checkpoint_dir`` or a ``resume`` file that cannot continue this run.
        RunInterrupted: SIGINT (or SIGTERM, where the caller turns it into KeyboardInterrupt)
            while training or testing; the checkpoints are kept and the error names the one to
            resume from.

    NOTE: checkpoints are deleted once the result is in, unless ``keep_checkpoints``; an
    interrupted or failed run keeps them.

    NOTE: the validation users' per-user rows (``user_results``) come from one more evaluation
    of the selected model on the validation users, after the test evaluation (the evaluations
    that selected it are not kept); ``test_seconds`` does not include it.
    """
    config = build_config(model, dataset, config_file_list, config_dict, cmd_args)
    check_also_test_states(config)
    check_shots_config(config)
    check_writable_dir(config["checkpoint_dir"], "checkpoint_dir")
    if resume is not None:
        check_resume(config, resume)
    logger = getLogger()
    logger.info(config)

    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    if config["shots"]:
        shot_users(config, train_data.dataset, test_data.dataset)  # fails before training

    model, trainer = build_model_and_trainer(config, train_data.dataset)
    logger.info(model)
    trainer.write_resume_checkpoints = trainer.resumable and config["single_spec"]
    if resume is not None:
        trainer.resume_checkpoint(resume)

    try:
        result = _train_and_test(config, dataset, trainer, train_data, valid_data, test_data, saved)
    except KeyboardInterrupt:
        raise trainer.interrupted() from None
    trainer.remove_checkpoints(keep_best=config["keep_checkpoints"])
    if not config["single_spec"]:
        torch.distributed.destroy_process_group()
    return result


def _train_and_test(config, dataset, trainer, train_data, valid_data, test_data, saved):
    """Fit, test and (``also_test_states``) test on further states: :func:`run_coldmeta`'s
    result dict."""
    logger = getLogger()
    start = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    train_seconds = time.perf_counter() - start
    trainer.eval_collector.keep_users = config["user_results"]
    start = time.perf_counter()
    test_result = trainer.evaluate(
        test_data, load_best_model=saved, show_progress=config["show_progress"]
    )
    test_seconds = time.perf_counter() - start
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        "best_valid_score": plain(float(best_valid_score)),
        "valid_result": plain(dict(best_valid_result or {})),
        "test_result": plain(dict(test_result or {})),
        "train_seconds": round(train_seconds, 3),
        "test_seconds": round(test_seconds, 3),
    }
    if getattr(dataset, "split_info", None) is not None:
        result["split"] = dict(dataset.split_info)
    if getattr(dataset, "split_manifest", None) is not None:
        result["split_sha256"] = dataset.split_manifest.sha256
        result["split_manifest"] = dataset.split_manifest
    if config["user_results"]:
        state = config["test_state"] if config["also_test_states"] else None
        train = train_data.dataset
        users = user_rows(config, trainer.eval_collector, test_data.dataset, "test", state, train)
        if valid_data:
            trainer.evaluate(valid_data, load_best_model=False, show_progress=False)
            users += user_rows(
                config, trainer.eval_collector, valid_data.dataset, "valid", None, train
            )
        result["user_results"] = users
    if config["also_test_states"]:
        result["state_results"] = {config["test_state"]: result["test_result"]}
        result["state_splits"] = {config["test_state"]: result.get("split")}
        for state in config["also_test_states"]:
            metrics, split, users = evaluate_on_state(config, trainer, state)
            logger.info(set_color(f"test result ({state})", "yellow") + f": {metrics}")
            result.get("user_results", []).extend(users)
            result["state_results"][state] = plain(dict(metrics))
            result["state_splits"][state] = split
    if config["shots"]:
        loaders = (train_data, valid_data, test_data)
        result.update(shot_results(config, dataset, trainer, loaders, build_model_and_trainer))
    return result


def check_resume(config, resume_file):
    """``resume_file`` can continue a run of ``config`` (checked before any data loads).

    Raises:
        ConfigError: the model's trainer has no epochs, the run is data-parallel, or the file
            is not a last-epoch checkpoint of this model, dataset and seed
            (:func:`~recbole_coldmeta.trainer.resume.read_resume_checkpoint`).
    """
    if not config["single_spec"]:
        raise ConfigError("--resume continues single-process runs; drop --nproc/--world_size.")
    trainer_class = get_trainer(config["MODEL_TYPE"], config["model"])
    if not trainer_class.resumable:
        raise ConfigError(
            f"{config['model']} has no epochs ({trainer_class.__name__}), and such a run cannot "
            f"be resumed; run it again without --resume."
        )
    read_resume_checkpoint(resume_file, config)


def run_coldmeta_parallel(
    model=None,
    dataset=None,
    config_file_list=None,
    config_dict=None,
    cmd_args=None,
    saved=True,
    nproc=1,
    world_size=-1,
    ip="localhost",
    port="5678",
    group_offset=0,
):
    """:func:`run_coldmeta` data-parallel: ``nproc`` processes here, ``world_size`` in all.

    RecBole's distributed flags and meaning (``run_recbole.py``): this machine runs global ranks
    ``group_offset .. group_offset + nproc - 1``; rank 0's machine (``ip``) hosts the
    rendezvous at ``port``. Each process trains on its share of the tasks of every batch and
    the meta-gradients are averaged (DistributedDataParallel: nccl on GPUs, gloo on CPU, see
    ``dist_backend``); every process evaluates all valid/test users.

    Returns:
        dict: rank 0's result (as :func:`run_coldmeta`), or ``None`` on the other machines.

    Raises:
        ColdMetaError: a process failed with it (bad config or data), re-raised here.
    """
    import torch.multiprocessing as mp

    world_size = nproc if world_size is None or world_size <= 0 else world_size
    if nproc < 1 or group_offset + nproc > world_size:
        raise ConfigError(
            f"nproc={nproc} processes from group_offset={group_offset} do not fit in "
            f"world_size={world_size}: need 1 <= nproc and group_offset + nproc <= world_size."
        )
    # NOTE: RecBole's init_logger creates ./log/<model>/ with an exists-then-makedirs check; the
    # processes start at once and race on it (FileExistsError). Made here, before they start.
    name = getattr(model, "__name__", model)
    os.makedirs(os.path.join("log", name) if isinstance(name, str) else "log", exist_ok=True)
    queue = mp.get_context("spawn").SimpleQueue()
    config_dict = {
        **(config_dict or {}),
        "world_size": world_size,
        "ip": ip,
        "port": str(port),
        "nproc": nproc,
        "offset": group_offset,
    }
    with tempfile.TemporaryDirectory(prefix="coldmeta-rank0-") as folder:
        result_file = os.path.join(folder, "result.pkl")
        args = (model, dataset, config_file_list, config_dict, cmd_args, saved, queue, result_file)
        try:
            mp.spawn(_run_rank, args=args, nprocs=nproc, join=True)
        except mp.ProcessRaisedException:
            if not queue.empty():
                message = queue.get()
                if isinstance(message, ColdMetaError):
                    raise message from None
            raise
        if not os.path.isfile(result_file):
            return None
        with open(result_file, "rb") as f:
            return pickle.load(f)


def _run_rank(
    local_rank, model, dataset, config_file_list, config_dict, cmd_args, saved, queue, result_file
):
    """One process of :func:`run_coldmeta_parallel`; global rank 0 pickles its result to
    ``result_file``.

    NOTE: the result goes through a file, not ``queue``: a pipe holds 64 KiB, and a larger put
    (a split manifest, per-user rows) would block rank 0 until the parent reads, while the parent
    waits for rank 0 to exit. Errors (one line each) still go through the queue.
    """
    config_dict = {**config_dict, "local_rank": local_rank}
    try:
        result = run_coldmeta(model, dataset, config_file_list, config_dict, cmd_args, saved)
    except ColdMetaError as error:
        queue.put(error)
        raise
    if local_rank + config_dict["offset"] == 0:
        with open(result_file, "wb") as f:
            pickle.dump(result, f)


def check_also_test_states(config):
    """``also_test_states`` only where a trained model does not depend on the test state.

    Raises:
        ConfigError: the split is not by state, is read from ``split_file``, or the model is
            not a meta-learner.
    """
    states = config["also_test_states"]
    if not states:
        return
    if config["user_split"] not in ("field", "time_states") or not config["cold_start_split"]:
        raise ConfigError(
            "also_test_states needs a split by state (user_split: field, e.g. --dataset=ml-1m, "
            "or user_split: time_states); remove it otherwise."
        )
    if not isinstance(states, list) or not all(isinstance(s, str) for s in states):
        raise ConfigError(f"also_test_states must be a list of state names, got {states!r}.")
    if config["split_file"] is not None:
        raise ConfigError(
            "also_test_states builds each further state's split, and split_file fixes one split; "
            "run each state with its own manifest (split_file) instead."
        )
    if not getattr(get_model(config["model"]), "task_batches", False):
        raise ConfigError(
            f"also_test_states is for meta-learners, which train on meta-train tasks only, so "
            f"one trained model serves every test state. {config['model']} is fitted on the "
            f"train split, which holds test_state's support rows: run it once per test_state "
            f"instead."
        )


def evaluate_on_state(config, trainer, state):
    """Metrics of the trained model on the test users of another ``state``.

    The state's split is built with the same seed and only its test loader is new: the trained
    model is evaluated as it is (each test user adapts on the support rows that the state's
    test batches carry), which is MeLU's protocol, one model trained once, tested on every state.

    Returns:
        tuple: the metrics, the state's split counts and, with ``user_results``, the state's
        per-user rows (else an empty list).
    """
    state_config = copy.deepcopy(config)
    state_config["test_state"] = state
    state_config["also_test_states"] = None
    dataset = create_dataset(state_config)
    train_data, _, test_data = data_preparation(state_config, dataset)
    metrics = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    users = []
    if config["user_results"]:
        collector, train = trainer.eval_collector, train_data.dataset
        users = user_rows(config, collector, test_data.dataset, "test", state, train)
    return metrics, dict(dataset.split_info), users


def write_result(result, result_file):
    """Write ``result`` as one JSON object to ``result_file`` (atomically); its per-user rows
    (``user_results``), if any, to :func:`~recbole_coldmeta.quick_start.user_results.users_file`
    beside it, named in the JSON as ``user_results_file``; its split manifest
    (``split_manifest``), if any, to :func:`~recbole_coldmeta.data.manifest.manifest_file`
    beside it (the JSON has its ``split_sha256``).

    NOTE: the manifest's name is not put in the JSON: it follows from the result's name, and
    the JSON of two runs of one split (a run and its resumed twin) stays the same.
    """
    result = dict(result)
    manifest = result.pop("split_manifest", None)
    if manifest is not None:
        manifest.write(manifest_file(result_file))
    users = result.pop("user_results", None)
    if users is not None:
        path = users_file(result_file)
        write_user_results(path, users)
        result["user_results_file"] = os.path.basename(path)
    atomic_write_text(result_file, json.dumps(result, indent=2) + "\n")


def print_test_result(result, stream=None):
    """Print model, dataset, seed and test metrics as one JSON line (the run's last line on
    stdout): ``{"model": ..., "dataset": ..., "seed": ..., "test_result": {...}}``."""
    line = {key: result[key] for key in ("model", "dataset", "seed", "test_result")}
    print(json.dumps(line), file=stream or sys.stdout, flush=True)
