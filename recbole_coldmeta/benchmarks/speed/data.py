"""The speed benchmark's data: ML-1M (or an ML-1M-sized synthetic stand-in) and MeLU on it.

Everything a variant needs is loaded once per process (:func:`load_data`); every variant starts
from the same seeded MeLU weights (:func:`build_model`).
"""

import time
from dataclasses import dataclass
from logging import getLogger
from pathlib import Path

import torch
from recbole.utils import init_seed

from recbole_coldmeta.data import create_dataset
from recbole_coldmeta.data.converters import default_raw_root, ensure_converted
from recbole_coldmeta.data.synthetic import write_synthetic_dataset
from recbole_coldmeta.data.utils import get_dataloader
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.registry import get_model
from recbole_coldmeta.utils import DataError

logger = getLogger(__name__)

#: Name of the synthetic stand-in used when the raw ML-1M files are missing.
SYNTHETIC_DATASET = "ml-1m-synthetic"

#: ML-1M's size, for the synthetic stand-in: users, items, ratings per user (MeLU's filter).
ML1M_SHAPE = {"n_users": 6040, "n_items": 3706, "inters_per_user": (13, 100)}

#: MeLU's user-cold-start protocol on ML-1M: the states of the converted ``melu_state`` field.
MELU_STATE_SPLIT = {
    "user_split": "field",
    "split_field": "melu_state",
    "train_states": ["meta_training"],
    "test_state": "user_cold_testing",
}


@dataclass
class DataSource:
    """Which atomic files the benchmark reads.

    Attributes:
        dataset: RecBole dataset name.
        data_path: RecBole ``data_path`` (the folder holding ``<dataset>/``).
        description: one line for the report: real or synthetic, and the split.
    """

    dataset: str
    data_path: str
    description: str


@dataclass
class BenchmarkData:
    """Everything a variant needs, loaded once per process.

    Attributes:
        config: the run's Config (MeLU on the benchmark's dataset).
        dataset: the meta-train part of the cold-start split (RecBole's train split).
        train_data: the task dataloader over ``dataset``.
        setup_seconds: time to load and split the data.
    """

    config: object
    dataset: object
    train_data: object
    setup_seconds: float


def resolve_data_source(dataset, data_path):
    """Make sure the atomic files of ``dataset`` exist under ``data_path`` and say which they are.

    ``ml-1m`` is converted from the raw files (:func:`ensure_converted`: ``$COLDMETA_RAW_DATA`` or
    ``../shared/datasets``); when those are missing, a synthetic dataset of ML-1M's size
    (:data:`SYNTHETIC_DATASET`) is written instead. Any other name must already be in
    ``data_path`` (or be RecBole's bundled ``ml-100k``).

    Returns:
        DataSource: the dataset actually used.
    """
    if dataset == "ml-1m":
        try:
            ensure_converted("ml-1m", data_path)
        except DataError as error:
            logger.warning(f"ML-1M raw data unusable ({error}); using synthetic data instead.")
            return resolve_data_source(SYNTHETIC_DATASET, data_path)
        return DataSource(
            "ml-1m",
            str(data_path),
            f"ML-1M converted from {default_raw_root()} (MeLU states: train on meta_training, "
            f"test on user_cold_testing)",
        )
    if dataset == SYNTHETIC_DATASET:
        if not (Path(data_path) / dataset / f"{dataset}.inter").is_file():
            write_synthetic_dataset(data_path, name=dataset, **ML1M_SHAPE)
        return DataSource(
            dataset,
            str(data_path),
            "synthetic, ML-1M-sized ({n_users} users, {n_items} items, 13-100 ratings each; "
            "random user split)".format(**ML1M_SHAPE),
        )
    return DataSource(dataset, str(data_path), f"{dataset} (random user split)")


def benchmark_config_dict(source, task_batch_size, local_steps):
    """The config overrides of a benchmark run on ``source``.

    MeLU's prior is pinned to ``global_mean``: the naive variants re-implement that
    prediction, and the timing is of the inner loop, not of the prior.
    On ML-1M the MeLU state split is spelled out (:data:`MELU_STATE_SPLIT`, the same values as
    ``properties/dataset/ml-1m.yaml``), so the benchmark does not change if that file does.
    """
    config_dict = {
        "data_path": source.data_path,
        "task_batch_size": task_batch_size,
        "local_steps": local_steps,
        "prior": "global_mean",  # the naive variants add the training mean
        "show_progress": False,
        "state": "WARNING",
    }
    if source.dataset == "ml-1m":
        config_dict.update(MELU_STATE_SPLIT)
    elif source.dataset == SYNTHETIC_DATASET:
        config_dict["load_col"] = None
    return config_dict


def load_data(source, task_batch_size, local_steps, config_dict=None):
    """Load ``source`` with MeLU's config, split it and build the task dataloader.

    Args:
        source: a :class:`DataSource`.
        task_batch_size: ``T``.
        local_steps: inner steps.
        config_dict: extra overrides (tests).

    Returns:
        BenchmarkData: the training part only; valid/test data are not used here.
    """
    start = time.perf_counter()
    overrides = benchmark_config_dict(source, task_batch_size, local_steps)
    config = build_config("MeLU", source.dataset, config_dict={**overrides, **(config_dict or {})})
    dataset = create_dataset(config)
    train_dataset = dataset.build()[0]
    train_data = get_dataloader(config, "train")(
        config, train_dataset, None, shuffle=config["shuffle"]
    )
    return BenchmarkData(config, train_dataset, train_data, time.perf_counter() - start)


def build_model(data, first_order):
    """MeLU on ``data`` with seeded initial weights: every call gives the same weights.

    ``first_order`` is written into ``data.config`` (MeLU reads it in ``__init__``), so that one
    loaded dataset serves both orders.
    """
    config = data.config
    config["first_order"] = first_order
    init_seed(config["seed"], config["reproducibility"])
    return get_model("MeLU")(config, data.dataset).to(config["device"])


def plain_rows(train_data):
    """Every support and query row of every task of ``train_data``: ``users, items, labels [R]``."""
    counts = train_data.task_counts
    starts = torch.repeat_interleave(train_data.task_starts, counts)  # [R]
    offsets = torch.arange(int(counts.sum())) - torch.repeat_interleave(
        torch.cumsum(counts, 0) - counts, counts
    )
    rows = train_data.task_rows[starts + offsets]  # [R]
    users = train_data.dataset.inter_feat[train_data.uid_field][rows]
    return users, train_data.items[rows], train_data.labels[rows]
