"""Where a dataset's atomic files are, converted from raw files first where a converter exists,
and whether they are fit for RecBole's loader (:mod:`recbole_coldmeta.data.atomic_files`,
:mod:`recbole_coldmeta.data.row_checks`)."""

import copy
import os
from dataclasses import dataclass, field

from recbole_coldmeta.data.atomic_files import check_atomic_file, loaded_columns
from recbole_coldmeta.data.converters import ensure_converted
from recbole_coldmeta.data.row_checks import duplicate_policy
from recbole_coldmeta.utils import DataError

#: The value of ``val_interval`` that drops exactly the rows whose value is missing (NaN).
ANY_NUMBER = "[-inf,inf]"


@dataclass
class CheckedFiles:
    """What :func:`check_dataset_files` hands the dataset class.

    Attributes:
        config: the config to build the dataset with: the run's own, or a copy of it whose
            ``val_interval`` / ``rm_dup_inter`` make RecBole drop what ``drop_incomplete_rows``
            and ``duplicate_interactions`` drop.
        label_scales: ``{field: LabelScale}`` of the ``.inter`` label columns.
    """

    config: object
    label_scales: dict = field(default_factory=dict)


def check_dataset_files(config):
    """Fail early, naming the file, the line and the fix, when the dataset's atomic files are
    missing or malformed.

    A dataset with a registered converter (``recbole_coldmeta.data.converters``, e.g. ml-1m) is
    converted first from the raw files under ``raw_data_path`` (default: ``$COLDMETA_RAW_DATA``,
    else ``../shared/datasets``). Then every ``.inter`` file, and the ``.user`` / ``.item`` files
    RecBole loads, pass :func:`~recbole_coldmeta.data.atomic_files.check_atomic_file`.

    Returns:
        CheckedFiles: the config to build the dataset with, and the label scales.
    """
    data_path = config["data_path"]
    name = config["dataset"]
    if not config["benchmark_filename"]:
        ensure_converted(
            name, os.path.dirname(os.path.normpath(data_path)), config["raw_data_path"]
        )
    if config["benchmark_filename"]:
        expected = [
            os.path.join(data_path, f"{name}.{part}.inter") for part in config["benchmark_filename"]
        ]
    else:
        expected = [os.path.join(data_path, f"{name}.inter")]
    missing = [path for path in expected if not os.path.isfile(path)]
    if missing:
        raise DataError(
            f"Dataset '{name}' not found: no atomic file {missing[0]}. Fix: put RecBole atomic "
            f"files ({name}.inter, optionally {name}.user / {name}.item) in a folder named "
            f"'{name}' and pass its parent as --data_path=DIR, or use the bundled default "
            f"--dataset=ml-100k."
        )
    reports = [check_atomic_file(path, "inter", config) for path in expected]
    for source in ("user", "item"):
        path = os.path.join(data_path, f"{name}.{source}")
        if os.path.isfile(path) and loaded_columns(config, source, ()) is not None:
            check_atomic_file(path, source, config)
    label_scales = {}
    for report in reports:
        for label, scale in report.label_scales.items():
            if label not in label_scales or (scale.outliers and not label_scales[label].outliers):
                label_scales[label] = scale
    return CheckedFiles(_dataset_config(config, reports, expected), label_scales)


def _dataset_config(config, reports, paths):
    """``config``, or a copy whose RecBole filters drop what the data-check policies drop."""
    incomplete = {column for report in reports for column in report.incomplete}
    ids = (config["USER_ID_FIELD"], config["ITEM_ID_FIELD"])
    to_filter = sorted(incomplete - set(ids))
    duplicates = sum(report.duplicates for report in reports)
    overrides = {}
    if config["benchmark_filename"] and incomplete:
        raise DataError(
            f"{paths[0]}: drop_incomplete_rows cannot drop rows of benchmark files, which RecBole "
            f"loads unfiltered. Fix: fill in the missing values."
        )
    policy = duplicate_policy(config)
    if config["benchmark_filename"] and duplicates and policy in ("first", "last"):
        raise DataError(
            f"{paths[0]}: duplicate_interactions: {policy} cannot drop rows of benchmark files, "
            f"which RecBole loads unfiltered. Fix: remove the repeated rows, or set "
            f"duplicate_interactions: keep."
        )
    if to_filter:
        intervals = dict(config["val_interval"] or {})
        for column in to_filter:
            intervals.setdefault(column, ANY_NUMBER)  # a NaN lies in no interval
        overrides["val_interval"] = intervals
    if duplicates and policy in ("first", "last") and config["rm_dup_inter"] is None:
        overrides["rm_dup_inter"] = policy
    if not overrides:
        return config
    dataset_config = copy.copy(config)
    dataset_config.final_config_dict = {**config.final_config_dict, **overrides}
    return dataset_config
