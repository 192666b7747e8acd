"""Converter from raw Amazon review files (McAuley's 2014 / 2018 releases) to atomic files.

Input: a review file (``reviews_<Category>_5.json.gz`` of 2014 or ``<Category>_5.json.gz`` of
2018: one JSON object per line with ``reviewerID``, ``asin``, ``overall`` and, when present,
``unixReviewTime``) and, optionally, the category's metadata file (``meta_<Category>.json.gz`` /
``meta_<Category>.json``: one object per line with ``asin`` and text fields such as ``title`` and
``description``; the 2014 files hold Python dict literals, which are read too). Plain or gzipped.

Output, for dataset name N, in ``<out_dir>/N/``: ``N.inter`` (``user_id, item_id, rating,
timestamp``) and ``N.item`` (``title_text``, the joined text fields, free text for the text
encoder; ``has_text`` 1/0), the same layout as the other Amazon converters, so a pair of
categories is a cross-domain task once named in ``source_domain`` / ``target_domain``.

Usage::

    python -m recbole_coldmeta.data.converters.amazon_reviews --reviews reviews_Books_5.json.gz \\
        --meta meta_Books.json.gz --name amazon-books --out_dir dataset

NOTE: a (user, item) pair reviewed twice keeps its first review in file order (counted and
logged). Lines that are not objects with the required keys are errors naming the line; a
metadata ``description`` given as a list of paragraphs is joined with spaces.
"""

import argparse
import ast
import gzip
import json
import logging
import sys
from pathlib import Path

import pandas as pd

from recbole_coldmeta.data.converters.amazon import _drop_duplicate_pairs, _write_dataset
from recbole_coldmeta.utils import DataError

logger = logging.getLogger(__name__)

REVIEW_KEYS = ("reviewerID", "asin", "overall")
INTER_HEADER = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")


def convert_amazon_reviews(reviews_file, out_dir, name, meta_file=None, text_fields=("title",)):
    """Write ``<out_dir>/<name>/<name>.inter|.item`` from one Amazon review file.

    Returns:
        Path: the folder holding the atomic files.

    Raises:
        DataError: a file is missing or empty, or a line is not a review (metadata) object.
    """
    rows = []
    for number, record in _records(reviews_file):
        missing = [key for key in REVIEW_KEYS if key not in record]
        if missing:
            raise DataError(
                f"Line {number} of '{reviews_file}' has no {missing}: an Amazon review line "
                f"holds reviewerID, asin and overall. Fix: pass a review file (not metadata)."
            )
        rows.append(
            (
                str(record["reviewerID"]),
                str(record["asin"]),
                float(record["overall"]),
                float(record.get("unixReviewTime", number)),
            )
        )
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    inter = _drop_duplicate_pairs(inter, reviews_file)
    titles = _item_texts(meta_file, text_fields, set(inter["item_id"])) if meta_file else {}
    return _write_dataset(inter, titles, out_dir, name, INTER_HEADER)


def _item_texts(meta_file, text_fields, items):
    texts = {}
    for number, record in _records(meta_file):
        if "asin" not in record:
            raise DataError(f"Line {number} of '{meta_file}' has no 'asin': not a metadata line.")
        if str(record["asin"]) not in items:
            continue
        parts = []
        for field in text_fields:
            value = record.get(field)
            if isinstance(value, list):
                value = " ".join(str(part) for part in value)
            if value and str(value).strip():
                parts.append(" ".join(str(value).split()))
        if parts:
            texts[str(record["asin"])] = ". ".join(parts)
    return texts


def _records(path):
    """``(line number, dict)`` for each non-blank line of a JSON-lines (or dict-literal) file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Amazon file '{path}' not found. Fix: pass the path of the (.gz) file.")
    opener = gzip.open if path.suffix == ".gz" else open
    count = 0
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                try:
                    record = ast.literal_eval(line)  # the 2014 metadata files
                except (ValueError, SyntaxError):
                    record = None
            if not isinstance(record, dict):
                raise DataError(
                    f"Line {number} of '{path}' is neither a JSON object nor a dict literal: "
                    f"{line[:80]!r}. Fix: pass an Amazon review or metadata file."
                )
            count += 1
            yield number, record
    if count == 0:
        raise DataError(f"Amazon file '{path}' is empty.")


def main(argv=None):
    """Command line; returns the exit code (2 on a data error)."""
    parser = argparse.ArgumentParser(
        prog="python -m recbole_coldmeta.data.converters.amazon_reviews",
        description="Convert an Amazon review file (+ metadata) into RecBole atomic files.",
    )
    parser.add_argument("--reviews", required=True, help="review file (.json or .json.gz)")
    parser.add_argument("--meta", default=None, help="metadata file with item text (optional)")
    parser.add_argument("--name", required=True, help="dataset name of the atomic files")
    parser.add_argument("--out_dir", default="dataset", help="RecBole data_path to write into")
    parser.add_argument(
        "--text_fields", default="title", help="metadata fields joined into the item text"
    )
    args = parser.parse_args(argv)
    from recbole_coldmeta.data.converters import run_converter_cli

    return run_converter_cli(
        convert_amazon_reviews,
        args.reviews,
        args.out_dir,
        args.name,
        args.meta,
        args.text_fields.split(","),
    )


if __name__ == "__main__":
    sys.exit(main())
