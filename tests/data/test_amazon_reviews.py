"""The raw Amazon review converter: 2018 JSON and 2014 dict-literal files, text, bad input."""

import gzip
import json

import pytest

from recbole_coldmeta.data.converters.amazon_reviews import convert_amazon_reviews, main
from recbole_coldmeta.utils import DataError

REVIEWS = [
    {"reviewerID": "U1", "asin": "0001", "overall": 5.0, "unixReviewTime": 100},
    {"reviewerID": "U1", "asin": "B002", "overall": 3.0, "unixReviewTime": 200},
    {"reviewerID": "U2", "asin": "0001", "overall": 4.0, "unixReviewTime": 150},
    {"reviewerID": "U2", "asin": "0001", "overall": 1.0, "unixReviewTime": 160},  # repeated pair
]


def write_lines(path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return path


def rows(path):
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def test_reviews_and_2014_metadata_become_atomic_files(tmp_path):
    reviews = write_lines(tmp_path / "r.json.gz", [json.dumps(r) for r in REVIEWS])
    meta = write_lines(
        tmp_path / "m.json.gz",
        [
            str({"asin": "0001", "title": "The  Prophet", "description": ["A", "book."]}),
            str({"asin": "9999", "title": "Unrated"}),
        ],
    )
    folder = convert_amazon_reviews(reviews, tmp_path, "books", meta, ("title", "description"))
    inter = rows(folder / "books.inter")
    assert inter[0] == ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
    assert inter[1:] == [
        ["U1", "0001", "5.0", "100.0"],
        ["U1", "B002", "3.0", "200.0"],
        ["U2", "0001", "4.0", "150.0"],
    ]
    assert rows(folder / "books.item")[1:] == [
        ["0001", "The Prophet. A book.", "1.0"],
        ["B002", "", "0.0"],
    ]


def test_bad_lines_and_files_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="not found"):
        convert_amazon_reviews(tmp_path / "none.json", tmp_path, "x")
    empty = write_lines(tmp_path / "e.json.gz", [""])
    with pytest.raises(DataError, match="is empty"):
        convert_amazon_reviews(empty, tmp_path, "x")
    meta_as_reviews = write_lines(tmp_path / "m.json.gz", [json.dumps({"asin": "1"})])
    with pytest.raises(DataError, match=r"Line 1 .* has no \['reviewerID', 'overall'\]"):
        convert_amazon_reviews(meta_as_reviews, tmp_path, "x")
    broken = write_lines(tmp_path / "b.json.gz", [json.dumps(REVIEWS[0]), "{oops"])
    with pytest.raises(DataError, match="Line 2"):
        convert_amazon_reviews(broken, tmp_path, "x")


def test_command_line(tmp_path, capsys):
    reviews = write_lines(tmp_path / "r.json.gz", [json.dumps(r) for r in REVIEWS])
    assert main(["--reviews", str(reviews), "--name", "b", "--out_dir", str(tmp_path)]) == 0
    assert (tmp_path / "b" / "b.inter").is_file()
    assert main(["--reviews", str(tmp_path / "no.json"), "--name", "b"]) == 2
    assert "error: Amazon file" in capsys.readouterr().err
