"""Converters from the raw public datasets to RecBole atomic files.

Each converter is registered in :data:`CONVERTERS` under the dataset name it writes; the command
line (``python -m recbole_coldmeta.data.converters NAME``) and :func:`ensure_converted` both read
that registry, so adding a dataset means adding one entry.
"""

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from recbole_coldmeta.data.converters.movielens import convert_ml1m

logger = logging.getLogger(__name__)

#: Environment variable naming the folder that holds the raw dataset folders.
RAW_DATA_ENV = "COLDMETA_RAW_DATA"

#: Raw data folder used when :data:`RAW_DATA_ENV` is unset, relative to the working directory.
DEFAULT_RAW_ROOT = "../shared/datasets"


class Converter(NamedTuple):
    """A registered converter.

    Attributes:
        convert (callable): ``convert(raw_dir, out_dir, name=..., verify=...) -> Path``.
        raw_folder (str): the folder, under the raw root, that holds its raw files.
        description (str): one line for the command line's help.
    """

    convert: Callable[..., Path]
    raw_folder: str
    description: str


#: Dataset name -> its converter.
CONVERTERS = {
    "ml-1m": Converter(
        convert_ml1m,
        "movielens-1m",
        "MovieLens-1M with MeLU's five state splits (users, items with IMDb side info and plot)",
    ),
}


def default_raw_root() -> Path:
    """The folder holding the raw dataset folders: ``$COLDMETA_RAW_DATA``, else
    ``../shared/datasets`` relative to the working directory."""
    return Path(os.environ.get(RAW_DATA_ENV) or DEFAULT_RAW_ROOT)


def default_raw_dir(name) -> Path:
    """The raw folder of the registered dataset ``name`` under :func:`default_raw_root`."""
    return default_raw_root() / CONVERTERS[name].raw_folder


def ensure_converted(name, data_path, raw_root=None) -> bool:
    """Convert dataset ``name`` into ``data_path`` unless its ``.inter`` file is already there.

    Args:
        name (str): dataset name, e.g. ``ml-1m``.
        data_path (str or Path): RecBole's ``data_path``: the atomic files go to
            ``<data_path>/<name>/``.
        raw_root (str or Path, optional): folder holding the raw dataset folders; defaults to
            :func:`default_raw_root`.

    Returns:
        bool: True when a conversion ran; False when the ``.inter`` file existed or ``name`` has no
        registered converter.

    Raises:
        DataError: the raw files are missing or are not the copies PROVENANCE.md describes.
    """
    if (Path(data_path) / name / f"{name}.inter").is_file() or name not in CONVERTERS:
        return False
    converter = CONVERTERS[name]
    raw_dir = Path(raw_root if raw_root is not None else default_raw_root()) / converter.raw_folder
    logger.info(f"Converting {name} from {raw_dir} into {data_path}")
    converter.convert(raw_dir, data_path, name=name, verify=True)
    return True


__all__ = [
    "CONVERTERS",
    "Converter",
    "convert_ml1m",
    "default_raw_dir",
    "default_raw_root",
    "ensure_converted",
]
