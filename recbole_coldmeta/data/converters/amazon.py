"""Amazon Books and Movies_and_TV for cross-domain cold start, converted to RecBole atomic files.

Two raw sources, each with one dataset per domain (``books`` and ``movies``):

- ``amazon-dense-{books,movies}``: the dense sample ``dense_subset/Amazon-{Books,Movies}-Dense``
  of Amazon Review Data 2018 (real 1-5 star ratings, no timestamps; 1,329 users rate in both
  domains). Titles come from ``derived/dense_subset_item_titles.tsv`` of the folder
  :data:`TITLES_FOLDER` (a real Amazon product title, else an Amazon-KG name); most items have none.
- ``amazon-kg-{books,movies}``: the Amazon-KG v2.0 5-core ``Amazon-KG-5core-{Books,Movies_and_TV}``
  interactions (implicit: every rating is 1; 1,062 users in both domains), titled by the DBpedia
  entity of the matching ``.link`` file, which every item has.

Fields:
    - ``.inter``: ``user_id, item_id, rating`` with the original reviewer ids and ASINs, in the raw
      file's order.
    - ``.item``: ``title_text``, one row for each item of the ``.inter`` file (sorted by ASIN); an
      empty title where the raw data has none; ``has_text`` (1.0 / 0.0), so that RecBole's own
      filter keeps titled items only: ``load_col: {item: [item_id, has_text]}`` with
      ``val_interval: {has_text: "[1,1]"}``.

``title_text`` is free text typed ``token`` only so that RecBole accepts the header (the same
convention as ml-1m's ``title_text``): configs never list it in ``load_col``, and text encoders read
it with ``pandas.read_csv(path, sep="\\t", dtype=str, keep_default_na=False)``. ASINs are strings
throughout: Books ASINs are ISBN-10s with leading zeros and a trailing ``X``.

NOTE: the dense files list 6,645 (Books) and 5,939 (Movies) (user, item) pairs more than once, 919
and 276 of them with different ratings. The first row in file order is kept and the others are
dropped and logged, so the ``.inter`` files hold fewer rows than PROVENANCE.md's counts (which are
checked on the raw files).

NOTE: a DBpedia entity becomes a title by dropping ``res:``, decoding its percent escapes
(``%3F`` -> ``?``) and turning ``_`` into spaces; the parenthesised disambiguator is kept
(``res:The_Prophet_(book)`` -> ``The Prophet (book)``). It separates namesakes across the two
domains (``I, Robot (film)``) and within one (``(1916 film)``), it is short, and the derived dense
title table writes Amazon-KG names the same way, so both sources read alike.

NOTE: the dense converters need a second raw folder, :data:`TITLES_FOLDER`, while a registered
converter names one ``raw_folder``; they look for it next to the raw folder
(``raw_dir.parent / TITLES_FOLDER``, which is where ``../shared/datasets`` and
``$COLDMETA_RAW_DATA`` hold it) unless ``titles_dir`` is given.

Reference: Wang et al. "Amazon-KG: A Knowledge Graph Enhanced Cross-Domain Recommendation Dataset."
in SIGIR 2024. https://doi.org/10.1145/3626772.3657880. Data: Ni, Li and McAuley. "Justifying
Recommendations using Distantly-Labeled Reviews and Fine-Grained Aspects." in EMNLP 2019.
https://doi.org/10.18653/v1/D19-1018, https://nijianmo.github.io/amazon/.
"""

import hashlib
import logging
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote

import pandas as pd

from recbole_coldmeta.data.converters.hints import raw_folder_fix
from recbole_coldmeta.data.converters.movielens import (
    _open_text,
    _raise_mismatch,
    _text,
    _write_atomic,
)
from recbole_coldmeta.utils import DataError

logger = logging.getLogger(__name__)


class AmazonDomain(NamedTuple):
    """Where one domain's raw data lies.

    Attributes:
        dense_inter (str): the dense ratings, relative to the raw folder.
        kg_inter (str): the Amazon-KG 5-core interactions, relative to the raw folder.
        kg_link (str): the Amazon-KG item -> DBpedia entity links, relative to the raw folder.
        title_domain (str): the domain's value in the ``domain`` column of :data:`TITLES_FILE`.
    """

    dense_inter: str
    kg_inter: str
    kg_link: str
    title_domain: str


#: Domain name (the dataset names' suffix) -> its raw files.
DOMAINS = {
    "books": AmazonDomain(
        "dense_subset/Amazon-Books-Dense.inter.gz",
        "Amazon-KG-5core-Books.inter.gz",
        "Amazon-KG-5core-Books.link.gz",
        "Books",
    ),
    "movies": AmazonDomain(
        "dense_subset/Amazon-Movies-Dense.inter.gz",
        "Amazon-KG-5core-Movies_and_TV.inter.gz",
        "Amazon-KG-5core-Movies_and_TV.link.gz",
        "Movies",
    ),
}


class RawFile(NamedTuple):
    """What PROVENANCE.md states about one raw file; counts are None where it states none."""

    sha256: str
    rows: int
    users: int | None = None
    items: int | None = None


#: Raw file (relative to the raw folder) -> what PROVENANCE.md states about it.
#: Source: /work/shared/datasets/amazon-kg-books-movies-cdr/PROVENANCE.md ("Contents", "Files").
EXPECTED_RAW_FILES = {
    "dense_subset/Amazon-Books-Dense.inter.gz": RawFile(
        "cce860e21afc5735fc000f6bf770358d3929a99fb69314882066a6d6e53a0720", 38_149, 1_426, 723
    ),
    "dense_subset/Amazon-Movies-Dense.inter.gz": RawFile(
        "da530fb8802ac4f0196db63f3bf604081360828fbb9ce2c8a74a43044c00aa5e", 68_023, 1_381, 1_338
    ),
    "Amazon-KG-5core-Books.inter.gz": RawFile(
        "1f390a2bcf4a97f13e5232e4db43b6001c5dc024b099e33fac6a9b168c85fea0", 115_572, 10_485, 8_318
    ),
    "Amazon-KG-5core-Movies_and_TV.inter.gz": RawFile(
        "3e16868ade4a436ff128740839a14dd475b8462057bfdd1258040b29b36a4a32", 67_066, 5_648, 4_779
    ),
    "Amazon-KG-5core-Books.link.gz": RawFile(
        "3d690c5ce7698f6b2d54be53818009d28a0e7a3c1d35107db164b464e5a900dd", 8_696
    ),
    "Amazon-KG-5core-Movies_and_TV.link.gz": RawFile(
        "e03aee81ca55ad7ebe523b7b280d41f918d3b430e30f62019dcf188a82bd8fcb", 4_896
    ),
}

#: The folder, next to the raw folder, that holds the dense subset's item titles.
TITLES_FOLDER = "amazon-books-movies-item-titles"

#: The dense subset's title table, relative to :data:`TITLES_FOLDER`.
TITLES_FILE = "derived/dense_subset_item_titles.tsv"

#: Source: /work/shared/datasets/amazon-books-movies-item-titles/PROVENANCE.md ("Files").
EXPECTED_TITLE_FILES = {
    TITLES_FILE: RawFile("fe2cb499e6bea509775e7930f5f124522a1bf6e6d3f7c168c7881f427aa841cf", 821),
}

#: Headers of the raw files, as their first line spells them.
DENSE_RAW_HEADER = ("user_id", "item_id", "rating")
KG_RAW_HEADER = ("user_id:token", "item_id:token", "rating:float")
LINK_RAW_HEADER = ("item_id:token", "entity_id:token")
TITLES_RAW_HEADER = ("domain", "asin", "title", "title_source")

INTER_HEADER = ("user_id:token", "item_id:token", "rating:float")
ITEM_HEADER = ("item_id:token", "title_text:token", "has_text:float")

_DBPEDIA_RESOURCE = "res:"
_RAW_FOLDER_FIX = raw_folder_fix("amazon-kg-books-movies-cdr", "dense_subset/")


def convert_amazon_dense(raw_dir, out_dir, domain, name=None, verify=True, titles_dir=None) -> Path:
    """Write ``<out_dir>/<name>/<name>.inter|.item`` from one domain of the dense subset.

    Args:
        raw_dir (str or Path): the ``amazon-kg-books-movies-cdr`` folder (with ``dense_subset/``).
        out_dir (str or Path): the RecBole ``data_path`` to write into.
        domain (str): ``books`` or ``movies`` (a key of :data:`DOMAINS`).
        name (str, optional): dataset name: the sub-folder and the stem of the atomic files;
            defaults to ``amazon-dense-<domain>``.
        verify (bool): check the sha256 and counts of every raw file read against PROVENANCE.md.
        titles_dir (str or Path, optional): the folder holding :data:`TITLES_FILE`; defaults to
            ``<raw_dir>/../amazon-books-movies-item-titles``.

    Returns:
        Path: the folder holding the two atomic files.

    Raises:
        DataError: a raw file is missing, malformed or (with ``verify``) not the expected copy.
    """
    spec = _domain(domain)
    name = name or f"amazon-dense-{domain}"
    raw_dir = Path(raw_dir)
    titles_dir = Path(titles_dir) if titles_dir is not None else raw_dir.parent / TITLES_FOLDER
    inter_path = _require(raw_dir, spec.dense_inter, _RAW_FOLDER_FIX)
    titles_path = _require(titles_dir, TITLES_FILE, _titles_folder_fix(raw_dir))
    if verify:
        _check_sha256(inter_path, EXPECTED_RAW_FILES[spec.dense_inter])
        _check_sha256(titles_path, EXPECTED_TITLE_FILES[TITLES_FILE])

    inter = _read_inter(inter_path, DENSE_RAW_HEADER, EXPECTED_RAW_FILES[spec.dense_inter], verify)
    inter = _drop_duplicate_pairs(_checked_ratings(inter, inter_path, 1, 5), inter_path)
    titles = _read_tsv(
        titles_path, TITLES_RAW_HEADER, EXPECTED_TITLE_FILES[TITLES_FILE].rows, verify
    )
    titles = titles[titles["domain"] == spec.title_domain]
    title_of_item = _title_map(titles["asin"], titles["title"].map(_text), titles_path)
    return _write_dataset(inter, title_of_item, out_dir, name)


def convert_amazon_kg(raw_dir, out_dir, domain, name=None, verify=True) -> Path:
    """Write ``<out_dir>/<name>/<name>.inter|.item`` from one domain of the Amazon-KG 5-core data.

    Args:
        raw_dir (str or Path): the ``amazon-kg-books-movies-cdr`` folder.
        out_dir (str or Path): the RecBole ``data_path`` to write into.
        domain (str): ``books`` or ``movies`` (a key of :data:`DOMAINS`).
        name (str, optional): dataset name: the sub-folder and the stem of the atomic files;
            defaults to ``amazon-kg-<domain>``.
        verify (bool): check the sha256 and counts of every raw file read against PROVENANCE.md.

    Returns:
        Path: the folder holding the two atomic files.

    Raises:
        DataError: a raw file is missing, malformed or (with ``verify``) not the expected copy.
    """
    spec = _domain(domain)
    name = name or f"amazon-kg-{domain}"
    raw_dir = Path(raw_dir)
    inter_path = _require(raw_dir, spec.kg_inter, _RAW_FOLDER_FIX)
    link_path = _require(raw_dir, spec.kg_link, _RAW_FOLDER_FIX)
    if verify:
        _check_sha256(inter_path, EXPECTED_RAW_FILES[spec.kg_inter])
        _check_sha256(link_path, EXPECTED_RAW_FILES[spec.kg_link])

    inter = _read_inter(inter_path, KG_RAW_HEADER, EXPECTED_RAW_FILES[spec.kg_inter], verify)
    inter = _drop_duplicate_pairs(_checked_ratings(inter, inter_path, 1, 1), inter_path)
    links = _read_tsv(link_path, LINK_RAW_HEADER, EXPECTED_RAW_FILES[spec.kg_link].rows, verify)
    title_of_item = _title_map(links["item_id"], links["entity_id"].map(entity_title), link_path)
    return _write_dataset(inter, title_of_item, out_dir, name)


def entity_title(entity) -> str:
    """The title a DBpedia resource names: ``res:The_Prophet_(book)`` -> ``The Prophet (book)``."""
    entity = entity.removeprefix(_DBPEDIA_RESOURCE)
    return _text(unquote(entity).replace("_", " "))


def _domain(domain):
    if domain not in DOMAINS:
        raise ValueError(f"Unknown Amazon domain '{domain}': use one of {list(DOMAINS)}.")
    return DOMAINS[domain]


def _titles_folder_fix(raw_dir):
    return (
        f"The dense Amazon converters read it from the folder {TITLES_FOLDER} next to the raw "
        f"folder '{raw_dir.absolute()}'. Fix: put that folder (or a link to it) there, or pass "
        f"titles_dir= to convert_amazon_dense in Python."
    )


def _require(folder, relative, fix):
    """``folder / relative``, or a DataError naming both and the fix when it is not a file."""
    path = folder / relative
    if not path.is_file():
        raise DataError(f"Raw Amazon file '{relative}' not found in '{folder.absolute()}'. {fix}")
    return path


def _check_sha256(path, expected):
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected.sha256:
        _raise_mismatch(path, "sha256", expected.sha256, actual)


def _read_tsv(path, header, expected_rows, verify):
    """A tab-separated raw file that starts with ``header``, as a table of strings.

    Columns are named by the header without type suffixes (``item_id:token`` -> ``item_id``).

    Raises:
        DataError: the header differs, a line has another number of fields, or (with ``verify``)
            the number of rows differs from ``expected_rows``.
    """
    rows = []
    with _open_text(path, "utf-8") as f:
        first_line = f.readline().rstrip("\r\n").split("\t")
        if first_line != list(header):
            raise DataError(
                f"Raw file '{path}' starts with the header {first_line}, expected {list(header)}. "
                f"Fix: re-copy the raw file."
            )
        for line_number, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != len(header):
                raise DataError(
                    f"Raw file '{path}', line {line_number}: {len(fields)} tab-separated fields, "
                    f"expected {len(header)}. Fix: re-copy the raw file."
                )
            rows.append(fields)
    if verify and len(rows) != expected_rows:
        _raise_mismatch(path, "row count", expected_rows, len(rows))
    return pd.DataFrame(rows, columns=[column.split(":")[0] for column in header])


def _read_inter(path, header, expected, verify):
    """The raw interactions; with ``verify``, their row, user and item counts are checked."""
    inter = _read_tsv(path, header, expected.rows, verify)
    if verify:
        for what, expected_count, column in [
            ("user count", expected.users, "user_id"),
            ("item count", expected.items, "item_id"),
        ]:
            actual = inter[column].nunique()
            if actual != expected_count:
                _raise_mismatch(path, what, expected_count, actual)
    return inter


def _checked_ratings(inter, path, lowest, highest):
    """``inter`` with numeric ratings; fails on the first that is not a number in the range."""
    ratings = pd.to_numeric(inter["rating"], errors="coerce")
    bad = ratings.isna() | (ratings < lowest) | (ratings > highest)
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise DataError(
            f"Raw file '{path}', data row {row + 1}: rating '{inter['rating'].iloc[row]}', "
            f"expected a number from {lowest} to {highest}. Fix: re-copy the raw file."
        )
    return inter.assign(rating=ratings.astype(float))


def _title_map(items, titles, path) -> dict:
    """Item -> title; an item listed twice is an error (which title would be meant?)."""
    repeated = items[items.duplicated()]
    if len(repeated):
        raise DataError(
            f"Raw file '{path}' lists {len(repeated)} items more than once, e.g. "
            f"{repeated.tolist()[:5]}. Fix: re-copy the raw file."
        )
    return dict(zip(items, titles))


def _drop_duplicate_pairs(inter, path):
    """Keep the first row of each (user, item) pair in file order, and log the others."""
    pair = ["user_id", "item_id"]
    duplicated = inter.duplicated(pair, keep="first")
    if duplicated.any():
        copies = inter[inter.duplicated(pair, keep=False)]
        conflicting = int((copies.groupby(pair)["rating"].nunique() > 1).sum())
        dropped = inter[duplicated]
        examples = dropped.drop_duplicates(pair).head(5)
        logger.warning(
            f"Dropped {len(dropped)} duplicated (user, item) rows of '{path}', keeping the first "
            f"in file order; {conflicting} of these pairs had different ratings; e.g. "
            f"{list(zip(examples['user_id'], examples['item_id']))}"
        )
    return inter[~duplicated].reset_index(drop=True)


def _write_dataset(inter, title_of_item, out_dir, name, inter_header=INTER_HEADER):
    """Write the ``.item`` file (every item of ``inter``, sorted by ASIN), then the ``.inter``."""
    item_ids = sorted(inter["item_id"].unique())
    titles = [title_of_item.get(item, "") for item in item_ids]
    items = pd.DataFrame({"item_id": item_ids, "title_text": titles})
    items["has_text"] = [1.0 if title else 0.0 for title in titles]
    n_titled = int((items["title_text"] != "").sum())
    logger.info(
        f"{name}: {n_titled} of {len(items)} items have a title "
        f"({100 * n_titled / max(len(items), 1):.1f} %)"
    )
    unused = len(title_of_item.keys() - set(item_ids))
    if unused:
        logger.info(f"{name}: {unused} titled items have no interaction and are left out")

    target = Path(out_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    _write_atomic(items, ITEM_HEADER, target / f"{name}.item")
    # The .inter file goes last: its presence marks a finished conversion (ensure_converted).
    _write_atomic(inter, inter_header, target / f"{name}.inter")
    logger.info(
        f"Wrote {name}: {len(inter)} interactions, {inter['user_id'].nunique()} users, "
        f"{len(items)} items to {target}"
    )
    return target
