"""Dataset and dataloader construction: ours first, RecBole's otherwise."""

import importlib
import warnings
from logging import getLogger

from recbole.data.utils import create_samplers
from recbole.data.utils import data_preparation as recbole_data_preparation
from recbole.data.utils import get_dataloader as recbole_get_dataloader
from recbole.utils import ModelType, set_color

from recbole_coldmeta.data.dataloader import MetaTaskDataLoader, SupportTable, with_support
from recbole_coldmeta.data.files import check_dataset_files
from recbole_coldmeta.utils import ConfigError, DataError, as_single_process

#: RecBole's dataset class for each model type (as in ``recbole.data.utils.create_dataset``).
RECBOLE_DATASET_OF_TYPE = {
    ModelType.GENERAL: "Dataset",
    ModelType.SEQUENTIAL: "SequentialDataset",
    ModelType.CONTEXT: "Dataset",
    ModelType.KNOWLEDGE: "KnowledgeBasedDataset",
    ModelType.TRADITIONAL: "Dataset",
    ModelType.DECISIONTREE: "Dataset",
}


def get_dataset_class(config):
    """The dataset class for ``config``.

    ``<model>Dataset`` of this package first; then, when ``source_domain`` is set, the
    cross-domain split; then, with ``cold_start_split`` (the default), the cold-start split class
    for the model's type; else RecBole's own choice.
    """
    ours = importlib.import_module("recbole_coldmeta.data.dataset")
    own_class = getattr(ours, config["model"] + "Dataset", None)
    if own_class is not None:
        return own_class
    if config["source_domain"] is not None:
        if config["MODEL_TYPE"] not in (ModelType.GENERAL, ModelType.TRADITIONAL):
            raise ConfigError(
                f"{config['model']} is not a general recommender; the cross-domain split "
                f"(source_domain is set) serves general and cross-domain models only."
            )
        return ours.CrossDomainDataset
    if config["split_file"] is not None and not config["cold_start_split"]:
        raise ConfigError(
            "split_file gives the roles of the cold-start split, and cold_start_split is False "
            "(RecBole's eval_args split); drop one of the two."
        )
    if config["cold_start_split"]:
        if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
            return ours.ColdStartSequentialDataset
        if config["MODEL_TYPE"] == ModelType.KNOWLEDGE:
            raise ConfigError(
                f"{config['model']} is a knowledge-aware model; the cold-start split does not "
                f"support those yet. Set cold_start_split: False."
            )
        return ours.ColdStartDataset
    recbole_datasets = importlib.import_module("recbole.data.dataset")
    if hasattr(recbole_datasets, config["model"] + "Dataset"):
        return getattr(recbole_datasets, config["model"] + "Dataset")
    return getattr(recbole_datasets, RECBOLE_DATASET_OF_TYPE[config["MODEL_TYPE"]])


def create_dataset(config):
    """Build the dataset for ``config`` after checking its files
    (:func:`~recbole_coldmeta.data.files.check_dataset_files`); the dataset's ``label_scales``
    are the scales of its label columns.

    NOTE: unlike ``recbole.data.create_dataset`` this never reloads a pickled dataset from
    ``checkpoint_dir``: RecBole's staleness check compares only its own dataset keys, so a cached
    dataset could silently carry a split made under other settings.
    """
    checked = check_dataset_files(config)
    with warnings.catch_warnings():
        # RecBole 1.2.1's loaders trigger pandas FutureWarnings (chained in-place fillna,
        # Series.agg(len)) that pandas < 3 still handles as intended; keep them out of the log.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.data")
        try:
            dataset = get_dataset_class(config)(checked.config)
        except ValueError as error:
            if "Some feat is empty" not in str(error):  # RecBole's words when filtering emptied it
                raise
            dataset = None
    if dataset is None or len(dataset.inter_feat) == 0:
        raise DataError(
            f"Dataset '{config['dataset']}' has no interactions left after loading and filtering "
            f"(user_inter_num_interval={config['user_inter_num_interval']}, "
            f"item_inter_num_interval={config['item_inter_num_interval']}, "
            f"val_interval={config['val_interval']}). Fix: widen these filters."
        )
    dataset.label_scales = checked.label_scales
    if config["save_dataset"]:
        dataset.save()
    return dataset


def get_dataloader(config, phase):
    """The dataloader class for ``phase``.

    Meta-learners (model classes with ``task_batches = True``, recorded by our Config as
    ``MODEL_TASK_BATCHES``) train on :class:`MetaTaskDataLoader` and are evaluated by RecBole's
    evaluation loader with :class:`~recbole_coldmeta.data.dataloader.SupportMixin` in front (each
    batch carries its users' support rows); every other model gets RecBole's choice.
    """
    if not config["MODEL_TASK_BATCHES"]:
        return recbole_get_dataloader(config, phase)
    if phase == "train":
        return MetaTaskDataLoader
    return with_support(recbole_get_dataloader(config, phase))


def build_dataloaders(config, train_dataset, valid_dataset=None, test_dataset=None, base=None):
    """Dataloaders over the parts of a split: ``(train_data, valid_data, test_data)``.

    The one place loaders are built (:func:`data_preparation`, the phases of
    :class:`~recbole_coldmeta.trainer.PhasedTrainer`). A part given as ``None`` gets no loader
    (``None``). Samplers come from RecBole's ``create_samplers`` over ``base`` (default: the
    train part). Evaluation loaders of a meta-learner carry the support rows of the train part
    (:class:`~recbole_coldmeta.data.dataloader.SupportTable`).

    NOTE: evaluation loaders are not sharded in a data-parallel run. RecBole shards them and
    averages each process's metrics weighted by its number of batches, which is not the metric
    over all users (MAE is over rows, nDCG over users, and a user's rows can land on two
    processes); here every process evaluates all valid/test users with the same parameters, so
    the averaged metrics equal the one-process metrics. Training tasks are sharded.
    """
    parts = [train_dataset, valid_dataset, test_dataset]
    fallback = valid_dataset if valid_dataset is not None else train_dataset
    stand_in = [part if part is not None else fallback for part in parts]
    samplers = create_samplers(config, base or train_dataset, stand_in)
    loaders = [
        get_dataloader(config, "train")(
            config, train_dataset, samplers[0], shuffle=config["shuffle"]
        )
    ]
    evaluated = valid_dataset is not None or test_dataset is not None
    support = {}
    if config["MODEL_TASK_BATCHES"] and evaluated:
        support["support"] = SupportTable(config, train_dataset)
    with as_single_process(config):
        for phase, part, sampler in zip(("valid", "test"), parts[1:], samplers[1:]):
            loader_class = get_dataloader(config, phase)
            loaders.append(
                None if part is None else loader_class(config, part, sampler, False, **support)
            )
    return tuple(loaders)


def data_preparation(config, dataset):
    """Split ``dataset`` with its own ``build()`` and wrap the parts in dataloaders
    (:func:`build_dataloaders`).

    Returns:
        tuple: ``(train_data, valid_data, test_data)``.
    """
    if config["MODEL_TYPE"] == ModelType.KNOWLEDGE:
        return recbole_data_preparation(config, dataset)
    train_dataset, valid_dataset, test_dataset = dataset.build()
    loaders = build_dataloaders(config, train_dataset, valid_dataset, test_dataset, base=dataset)
    getLogger().info(
        set_color("[Data]: ", "pink")
        + f"train {len(train_dataset)}, valid {len(valid_dataset)}, test {len(test_dataset)} "
        + "interactions"
    )
    return loaders
