"""Converters from the raw public datasets to RecBole atomic files.

Each converter is registered in :data:`CONVERTERS` under the dataset name it writes; the command
line (``python -m recbole_coldmeta.data.converters NAME``) and :func:`ensure_converted` both read
that registry, so adding a dataset means adding one entry. A converter that also reads a second
raw folder looks for it next to its own (``raw_dir.parent``), as the dense Amazon converters do
for ``amazon-books-movies-item-titles``; the registry names only the main folder.
"""

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from recbole_coldmeta.data.converters.amazon import (
    TITLES_FOLDER,
    convert_amazon_dense,
    convert_amazon_kg,
)
from recbole_coldmeta.data.converters.movielens import convert_ml1m
from recbole_coldmeta.data.converters.scientific import convert_scientific
from recbole_coldmeta.data.synthetic import write_synthetic_cross_domain
from recbole_coldmeta.utils import DataError

logger = logging.getLogger(__name__)

#: Environment variable naming the folder that holds the raw dataset folders.
RAW_DATA_ENV = "COLDMETA_RAW_DATA"

#: Raw data folder used when :data:`RAW_DATA_ENV` is unset, relative to the working directory.
DEFAULT_RAW_ROOT = "../shared/datasets"


def generate_cdr_example(raw_dir, out_dir, name=None, verify=True) -> Path:
    """Write both domains of the synthetic cross-domain example (no raw files needed)."""
    write_synthetic_cross_domain(out_dir)
    return Path(out_dir) / name


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
    "cdr-example-books": Converter(
        generate_cdr_example, "", "Synthetic cross-domain example, source domain (generated)"
    ),
    "cdr-example-movies": Converter(
        generate_cdr_example, "", "Synthetic cross-domain example, target domain (generated)"
    ),
    "amazon-dense-books": Converter(
        functools.partial(convert_amazon_dense, domain="books"),
        "amazon-kg-books-movies-cdr",
        f"Amazon Books dense subset, 1-5 ratings; titles from the sibling folder {TITLES_FOLDER}",
    ),
    "amazon-dense-movies": Converter(
        functools.partial(convert_amazon_dense, domain="movies"),
        "amazon-kg-books-movies-cdr",
        "Amazon Movies_and_TV dense subset, 1-5 ratings; titles from the sibling folder "
        f"{TITLES_FOLDER}",
    ),
    "amazon-kg-books": Converter(
        functools.partial(convert_amazon_kg, domain="books"),
        "amazon-kg-books-movies-cdr",
        "Amazon-KG v2.0 5-core Books, implicit (rating 1); titles from DBpedia names",
    ),
    "amazon-kg-movies": Converter(
        functools.partial(convert_amazon_kg, domain="movies"),
        "amazon-kg-books-movies-cdr",
        "Amazon-KG v2.0 5-core Movies_and_TV, implicit (rating 1); titles from DBpedia names",
    ),
    "scientific": Converter(
        convert_scientific,
        "amazon-scientific-mm-seq",
        "Amazon Industrial_and_Scientific sequences (DeCoRec's sample of UniSRec's), item text and "
        "text/image features",
    ),
}


def run_converter_cli(convert, *args, **kwargs) -> int:
    """Run ``convert(*args, **kwargs)`` for a command line: INFO logging, and a data error as one
    ``error:`` line on stderr with exit code 2 (0 on success)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        convert(*args, **kwargs)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


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
    "convert_amazon_dense",
    "convert_amazon_kg",
    "convert_ml1m",
    "convert_scientific",
    "default_raw_dir",
    "default_raw_root",
    "ensure_converted",
]
