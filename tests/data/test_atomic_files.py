"""Format checks of atomic files: RecBole's own files pass, line numbers survive blank lines and
CRLF, and the byte-level field count agrees with the line-by-line one."""

import os

import numpy as np
import pytest
import recbole

from recbole_coldmeta.data.atomic_files import _rows_and_field_counts, check_atomic_file
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.utils import DataError

ML_100K = os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k")


@pytest.fixture(scope="module")
def ml100k_config():
    return build_config("MeLU", "ml-100k", config_dict={"state": "WARNING"})


@pytest.mark.parametrize("source, rows", [("inter", 100_000), ("user", 943), ("item", 1682)])
def test_recbole_ml100k_passes(ml100k_config, source, rows):
    report = check_atomic_file(os.path.join(ML_100K, f"ml-100k.{source}"), source, ml100k_config)
    assert report.rows == rows and not report.incomplete and report.duplicates == 0
    if source == "inter":
        assert report.label_scales["rating"].values == (1, 2, 3, 4, 5)


TEXT = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\r\n"
    "u1\ti1\t4\t1\r\n\r\n\nu2\ti2\t5\t2\r\nu3\ti3\tx\t3\r\n"
)


def test_line_numbers_count_blank_lines_and_crlf(ml100k_config, tmp_path):
    path = tmp_path / "crlf.inter"
    path.write_bytes(TEXT.encode())
    with pytest.raises(DataError, match=r"crlf.inter line 6, column 'rating': 'x' is not"):
        check_atomic_file(str(path), "inter", ml100k_config)
    path.write_bytes(TEXT.replace("\tx\t", "\t3\t").encode())
    assert check_atomic_file(str(path), "inter", ml100k_config).rows == 3


@pytest.mark.parametrize("text", [TEXT, TEXT.rstrip("\n"), "a:token\n\n\nb\tc\n\td\t\t\n"])
def test_byte_and_line_field_counts_agree(text):
    raw = text.encode("utf-8")
    by_bytes = _rows_and_field_counts(raw, text, "\t", "utf-8")
    by_lines = _rows_and_field_counts(raw, text, "\t", "utf-16")  # no one-byte separator
    for left, right in zip(by_bytes, by_lines):
        np.testing.assert_array_equal(left, right)


def test_a_column_load_col_names_must_exist(tmp_path):
    config = build_config(
        "MeLU",
        "ml-100k",
        config_dict={"state": "WARNING", "load_col": {"inter": ["user_id", "item_id", "stars"]}},
    )
    with pytest.raises(DataError, match=r"load_col\['inter'\] names stars"):
        check_atomic_file(os.path.join(ML_100K, "ml-100k.inter"), "inter", config)
