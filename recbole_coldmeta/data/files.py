"""Where a dataset's atomic files are, converted from raw files first where a converter exists."""

import os

from recbole_coldmeta.data.converters import ensure_converted
from recbole_coldmeta.utils import DataError


def check_dataset_files(config):
    """Fail early, naming the expected path, when the dataset's ``.inter`` file is missing.

    A dataset with a registered converter (``recbole_coldmeta.data.converters``, e.g. ml-1m) is
    converted first from the raw files under ``raw_data_path`` (default: ``$COLDMETA_RAW_DATA``,
    else ``../shared/datasets``).
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
