"""The Amazon converters, on tiny fake raw folders (and, marked slow, on the real files)."""

import gzip
import hashlib
import logging
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from recbole_coldmeta.config import Config
from recbole_coldmeta.data import create_dataset
from recbole_coldmeta.data.converters import (
    CONVERTERS,
    amazon,
    convert_amazon_dense,
    convert_amazon_kg,
    default_raw_dir,
    ensure_converted,
)
from recbole_coldmeta.data.converters.__main__ import main
from recbole_coldmeta.utils import DataError

REAL_RAW_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"

INTER_HEADER_LINE = "user_id:token\titem_id:token\trating:float"
ITEM_HEADER_LINE = "item_id:token\ttitle_text:token\thas_text:float"

# Books ASINs keep their leading zeros and trailing X. User A1 rates 000100039X twice with
# different ratings, user A2 rates 0002005395 twice with the same rating.
DENSE_BOOKS = [
    ("A1", "000100039X", "5.0"),
    ("A2", "000100039X", "4.0"),
    ("A1", "0002005395", "3.0"),
    ("A1", "000100039X", "1.0"),
    ("A3", "0451179811", "2.0"),
    ("A2", "0002005395", "3.0"),
    ("A2", "0002005395", "3.0"),
]
DENSE_MOVIES = [
    ("A4", "B00005JN0T", "4.0"),
    ("A1", "0767803434", "2.0"),
    ("A4", "0767803434", "5.0"),
]
# One Books title for an item nobody rates; 0002005395 and 0451179811 have none.
TITLES = [
    ("Books", "000100039X", "The  Prophet", "srin-cdr"),
    ("Books", "9999999999", "Unrated Book", "amazon-kg-v1"),
    ("Movies", "B00005JN0T", '"Weird Al" Yankovic', "amazon-kg-v1"),
    ("Movies", "0767803434", "Air Force One", "srin-cdr"),
]
KG_BOOKS = [("U1", "000100039X", "1"), ("U1", "0811825558", "1"), ("U2", "000100039X", "1")]
KG_MOVIES = [("U1", "B00005JN0T", "1"), ("U3", "6305841934", "1")]
# 0002005395 has a link but no interaction.
KG_BOOKS_LINKS = [
    ("000100039X", "res:The_Prophet_(book)"),
    ("0811825558", "res:Madam,_Will_You_Talk%3F"),
    ("0002005395", "res:Deafening_(novel)"),
]
KG_MOVIES_LINKS = [
    ("B00005JN0T", "res:I,_Robot_(film)"),
    ("6305841934", "res:%22Weird_Al%22_Yankovic:_The_Ultimate_Video_Collection"),
]

#: Raw file (relative to the raw folder) -> (its header, its rows).
FAKE_RAW_FILES = {
    "dense_subset/Amazon-Books-Dense.inter.gz": (amazon.DENSE_RAW_HEADER, DENSE_BOOKS),
    "dense_subset/Amazon-Movies-Dense.inter.gz": (amazon.DENSE_RAW_HEADER, DENSE_MOVIES),
    "Amazon-KG-5core-Books.inter.gz": (amazon.KG_RAW_HEADER, KG_BOOKS),
    "Amazon-KG-5core-Movies_and_TV.inter.gz": (amazon.KG_RAW_HEADER, KG_MOVIES),
    "Amazon-KG-5core-Books.link.gz": (amazon.LINK_RAW_HEADER, KG_BOOKS_LINKS),
    "Amazon-KG-5core-Movies_and_TV.link.gz": (amazon.LINK_RAW_HEADER, KG_MOVIES_LINKS),
}


def write_table(path, header, rows):
    """Write a tab-separated file with a header line, gzipped when ``path`` ends in ``.gz``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    content = "\n".join("\t".join(fields) for fields in [header, *rows]) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(content)
    else:
        path.write_text(content, encoding="utf-8")


def write_fake_raw(raw_root):
    """Write both Amazon raw folders under ``raw_root``; return the main one."""
    raw_dir = Path(raw_root) / "amazon-kg-books-movies-cdr"
    for relative, (header, rows) in FAKE_RAW_FILES.items():
        write_table(raw_dir / relative, header, rows)
    titles_dir = Path(raw_root) / amazon.TITLES_FOLDER
    write_table(titles_dir / amazon.TITLES_FILE, amazon.TITLES_RAW_HEADER, TITLES)
    return raw_dir


def read_atomic(path):
    """An atomic file as strings, with the type suffixes dropped from the column names."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return table.rename(columns=lambda column: column.split(":")[0])


def first_line(path):
    with open(path, encoding="utf-8") as f:
        return f.readline().rstrip("\n")


@pytest.fixture
def raw_dir(tmp_path):
    return write_fake_raw(tmp_path / "raw")


@pytest.fixture
def fake_provenance(raw_dir, monkeypatch):
    """Make the fake raw files the expected ones, so that verify=True passes on them."""
    for relative, (_, rows) in FAKE_RAW_FILES.items():
        sha256 = hashlib.sha256((raw_dir / relative).read_bytes()).hexdigest()
        users = items = None
        if relative.endswith(".inter.gz"):
            users, items = len({row[0] for row in rows}), len({row[1] for row in rows})
        fake = amazon.RawFile(sha256, len(rows), users, items)
        monkeypatch.setitem(amazon.EXPECTED_RAW_FILES, relative, fake)
    titles_path = raw_dir.parent / amazon.TITLES_FOLDER / amazon.TITLES_FILE
    sha256 = hashlib.sha256(titles_path.read_bytes()).hexdigest()
    fake = amazon.RawFile(sha256, len(TITLES))
    monkeypatch.setitem(amazon.EXPECTED_TITLE_FILES, amazon.TITLES_FILE, fake)


def test_registry_names_the_four_datasets_and_their_folder(monkeypatch):
    monkeypatch.delenv("COLDMETA_RAW_DATA", raising=False)
    names = ["amazon-dense-books", "amazon-dense-movies", "amazon-kg-books", "amazon-kg-movies"]
    for name in names:
        assert CONVERTERS[name].raw_folder == "amazon-kg-books-movies-cdr"
        assert default_raw_dir(name) == Path("../shared/datasets/amazon-kg-books-movies-cdr")


def test_dense_inter_keeps_the_first_of_duplicated_pairs(raw_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="recbole_coldmeta")
    target = convert_amazon_dense(raw_dir, tmp_path / "data", "books", verify=False)
    assert target == tmp_path / "data" / "amazon-dense-books"
    inter_path = target / "amazon-dense-books.inter"
    assert first_line(inter_path) == INTER_HEADER_LINE
    inter = read_atomic(inter_path)
    assert inter.values.tolist() == [
        ["A1", "000100039X", "5.0"],
        ["A2", "000100039X", "4.0"],
        ["A1", "0002005395", "3.0"],
        ["A3", "0451179811", "2.0"],
        ["A2", "0002005395", "3.0"],
    ]
    assert caplog.text.count("Dropped 2 duplicated (user, item) rows") == 1
    assert "1 of these pairs had different ratings" in caplog.text
    assert "Amazon-Books-Dense.inter.gz" in caplog.text


def test_dense_item_file_titles_every_rated_item(raw_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="recbole_coldmeta")
    books = convert_amazon_dense(raw_dir, tmp_path, "books", verify=False)
    item_path = books / "amazon-dense-books.item"
    assert first_line(item_path) == ITEM_HEADER_LINE
    assert read_atomic(item_path).values.tolist() == [
        ["000100039X", "The Prophet", "1.0"],
        ["0002005395", "", "0.0"],
        ["0451179811", "", "0.0"],
    ]
    assert "amazon-dense-books: 1 of 3 items have a title" in caplog.text
    assert "1 titled items have no interaction" in caplog.text
    movies = convert_amazon_dense(raw_dir, tmp_path, "movies", verify=False)
    assert read_atomic(movies / "amazon-dense-movies.item").values.tolist() == [
        ["0767803434", "Air Force One", "1.0"],
        ["B00005JN0T", '"Weird Al" Yankovic', "1.0"],
    ]
    assert "amazon-dense-movies: 2 of 2 items have a title" in caplog.text


def test_kg_titles_come_from_the_dbpedia_links(raw_dir, tmp_path):
    books = convert_amazon_kg(raw_dir, tmp_path, "books", verify=False)
    inter = read_atomic(books / "amazon-kg-books.inter")
    assert inter.values.tolist() == [[user, item, "1.0"] for user, item, _ in KG_BOOKS]
    assert read_atomic(books / "amazon-kg-books.item").values.tolist() == [
        ["000100039X", "The Prophet (book)", "1.0"],
        ["0811825558", "Madam, Will You Talk?", "1.0"],
    ]
    movies = convert_amazon_kg(raw_dir, tmp_path, "movies", verify=False)
    assert first_line(movies / "amazon-kg-movies.inter") == INTER_HEADER_LINE
    assert first_line(movies / "amazon-kg-movies.item") == ITEM_HEADER_LINE
    assert read_atomic(movies / "amazon-kg-movies.item").values.tolist() == [
        ["6305841934", '"Weird Al" Yankovic: The Ultimate Video Collection', "1.0"],
        ["B00005JN0T", "I, Robot (film)", "1.0"],
    ]


@pytest.mark.parametrize(
    "entity, title",
    [
        ("res:The_Prophet_(book)", "The Prophet (book)"),
        ("res:Where's_My_Cow%3F", "Where's My Cow?"),
        ("res:The_4%25_Solution", "The 4% Solution"),
        ("res:Letters_Home:_Correspondence_1950–1963", "Letters Home: Correspondence 1950–1963"),
    ],
)
def test_entity_title(entity, title):
    assert amazon.entity_title(entity) == title


@pytest.mark.parametrize(
    "name, convert, domain, asin",
    [
        ("amazon-dense-books", convert_amazon_dense, "books", "000100039X"),
        ("amazon-kg-movies", convert_amazon_kg, "movies", "B00005JN0T"),
    ],
)
def test_converted_files_load_with_recbole(raw_dir, tmp_path, name, convert, domain, asin):
    target = convert(raw_dir, tmp_path / "data", domain, verify=False)
    dataset = load_with_recbole(name, tmp_path / "data")
    n_items = len(read_atomic(target / f"{name}.item"))
    n_inter = len(read_atomic(target / f"{name}.inter"))
    assert (dataset.item_num, dataset.inter_num) == (n_items + 1, n_inter)  # with [PAD]
    assert asin in dataset.field2id_token["item_id"]


def load_with_recbole(name, data_path):
    config = Config(
        model="GlobalMean",
        dataset=name,
        config_dict={
            "data_path": str(data_path),
            "load_col": {"inter": ["user_id", "item_id", "rating"], "item": ["item_id"]},
            "TIME_FIELD": None,
            "cold_start_split": False,
            "user_inter_num_interval": "[0,inf)",
            "show_progress": False,
            "state": "WARNING",
        },
    )
    return create_dataset(config)


def test_missing_titles_folder_names_it_and_the_fix(raw_dir, tmp_path):
    titles_path = raw_dir.parent / amazon.TITLES_FOLDER / amazon.TITLES_FILE
    titles_path.unlink()
    with pytest.raises(DataError) as error:
        convert_amazon_dense(raw_dir, tmp_path / "data", "books", verify=False)
    message = str(error.value)
    assert amazon.TITLES_FILE in message and amazon.TITLES_FOLDER in message
    assert str(raw_dir) in message and "titles_dir=" in message
    assert not (tmp_path / "data").exists()


def test_titles_dir_can_be_given(raw_dir, tmp_path):
    moved = tmp_path / "elsewhere"
    (raw_dir.parent / amazon.TITLES_FOLDER).rename(moved)
    target = convert_amazon_dense(raw_dir, tmp_path, "movies", verify=False, titles_dir=moved)
    assert len(read_atomic(target / "amazon-dense-movies.item")) == 2


def test_missing_raw_file_names_file_and_folder(raw_dir, tmp_path):
    (raw_dir / "Amazon-KG-5core-Books.link.gz").unlink()
    with pytest.raises(DataError) as error:
        convert_amazon_kg(raw_dir, tmp_path, "books", verify=False)
    assert "Amazon-KG-5core-Books.link.gz" in str(error.value)
    assert str(raw_dir) in str(error.value) and "--raw_dir" in str(error.value)


@pytest.mark.parametrize(
    "convert, domain, relative",
    [
        (convert_amazon_dense, "books", "dense_subset/Amazon-Books-Dense.inter.gz"),
        (convert_amazon_kg, "movies", "Amazon-KG-5core-Movies_and_TV.inter.gz"),
    ],
)
def test_sha256_mismatch_names_file_values_and_fix(raw_dir, tmp_path, convert, domain, relative):
    with pytest.raises(DataError) as error:
        convert(raw_dir, tmp_path / "data", domain, verify=True)
    message = str(error.value)
    expected = amazon.EXPECTED_RAW_FILES[relative].sha256
    actual = hashlib.sha256((raw_dir / relative).read_bytes()).hexdigest()
    assert relative in message and expected in message and actual in message
    assert "re-copy the raw file" in message and "--no_verify" in message
    assert not (tmp_path / "data").exists()


def test_title_table_sha256_is_verified(raw_dir, tmp_path, fake_provenance, monkeypatch):
    fake = amazon.RawFile("0" * 64, len(TITLES))
    monkeypatch.setitem(amazon.EXPECTED_TITLE_FILES, amazon.TITLES_FILE, fake)
    with pytest.raises(DataError, match=r"dense_subset_item_titles.tsv' has sha256"):
        convert_amazon_dense(raw_dir, tmp_path, "books", verify=True)


def test_verify_passes_on_the_expected_files(raw_dir, tmp_path, fake_provenance):
    for domain in amazon.DOMAINS:
        convert_amazon_dense(raw_dir, tmp_path, domain, verify=True)
        convert_amazon_kg(raw_dir, tmp_path, domain, verify=True)
    assert len(list(tmp_path.glob("amazon-*/amazon-*.inter"))) == 4


@pytest.mark.parametrize("what, field", [("row count", "rows"), ("item count", "items")])
def test_count_mismatch_is_an_error(raw_dir, tmp_path, fake_provenance, monkeypatch, what, field):
    relative = "Amazon-KG-5core-Books.inter.gz"
    expected = amazon.EXPECTED_RAW_FILES[relative]
    monkeypatch.setitem(amazon.EXPECTED_RAW_FILES, relative, expected._replace(**{field: 99}))
    actual = getattr(expected, field)
    with pytest.raises(DataError, match=rf"Books.inter.gz' has {what} {actual}, expected 99"):
        convert_amazon_kg(raw_dir, tmp_path, "books", verify=True)


def test_rating_out_of_range_is_an_error(raw_dir, tmp_path):
    write_table(raw_dir / "Amazon-KG-5core-Books.inter.gz", amazon.KG_RAW_HEADER, [("U", "I", "4")])
    with pytest.raises(DataError, match=r"data row 1: rating '4', expected a number from 1 to 1"):
        convert_amazon_kg(raw_dir, tmp_path, "books", verify=False)


def test_unexpected_header_is_an_error(raw_dir, tmp_path):
    path = raw_dir / "dense_subset/Amazon-Movies-Dense.inter.gz"
    write_table(path, ("user", "asin", "stars"), DENSE_MOVIES)
    with pytest.raises(DataError, match=r"starts with the header \['user', 'asin', 'stars'\]"):
        convert_amazon_dense(raw_dir, tmp_path, "movies", verify=False)


def test_ensure_converted_finds_the_titles_folder_next_to_the_raw_folder(
    raw_dir, tmp_path, fake_provenance
):
    data_path = tmp_path / "data"
    assert ensure_converted("amazon-dense-movies", data_path, raw_root=raw_dir.parent) is True
    assert (data_path / "amazon-dense-movies" / "amazon-dense-movies.item").is_file()
    assert ensure_converted("amazon-dense-movies", data_path, raw_root=raw_dir.parent) is False


def test_command_line_converts_without_verify(raw_dir, tmp_path):
    command = [sys.executable, "-m", "recbole_coldmeta.data.converters", "amazon-dense-books"]
    command += [f"--raw_dir={raw_dir}", f"--out_dir={tmp_path / 'data'}"]
    completed = subprocess.run(command + ["--no_verify"], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    target = tmp_path / "data" / "amazon-dense-books"
    assert len(read_atomic(target / "amazon-dense-books.inter")) == 5
    assert "amazon-dense-books: 1 of 3 items have a title" in completed.stderr

    completed = subprocess.run(command, capture_output=True, text=True)
    assert completed.returncode == 2
    assert completed.stderr.startswith("error: Raw file ")
    assert "Amazon-Books-Dense.inter.gz' has sha256" in completed.stderr


def test_command_line_name_option(raw_dir, tmp_path):
    args = ["amazon-kg-movies", f"--raw_dir={raw_dir}", f"--out_dir={tmp_path}", "--no_verify"]
    assert main(args + ["--name=kg-movies-small"]) == 0
    assert len(read_atomic(tmp_path / "kg-movies-small" / "kg-movies-small.inter")) == 2


#: Dataset name -> (.inter rows, users, items, items with a title) measured on the real files.
#: The dense counts are after dropping duplicated pairs (PROVENANCE: 38,149 and 68,023 raw rows).
REAL_COUNTS = {
    "amazon-dense-books": (31_504, 1_426, 723, 247),
    "amazon-dense-movies": (62_084, 1_381, 1_338, 574),
    "amazon-kg-books": (115_572, 10_485, 8_318, 8_318),
    "amazon-kg-movies": (67_066, 5_648, 4_779, 4_779),
}


@pytest.mark.slow
@pytest.mark.skipif(
    not (REAL_RAW_ROOT / "amazon-kg-books-movies-cdr").is_dir(), reason=f"{REAL_RAW_ROOT} is absent"
)
@pytest.mark.parametrize("name", list(REAL_COUNTS))
def test_real_amazon_conversion(name, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="recbole_coldmeta")
    raw_dir = REAL_RAW_ROOT / CONVERTERS[name].raw_folder
    target = CONVERTERS[name].convert(raw_dir, tmp_path, name=name, verify=True)
    inter = read_atomic(target / f"{name}.inter")
    items = read_atomic(target / f"{name}.item")
    n_rows, n_users, n_items, n_titled = REAL_COUNTS[name]
    assert len(inter) == n_rows and not inter.duplicated(["user_id", "item_id"]).any()
    assert inter.user_id.nunique() == n_users and inter.item_id.nunique() == n_items
    assert items.item_id.tolist() == sorted(inter.item_id.unique())
    assert (items.title_text != "").sum() == n_titled
    assert f"{name}: {n_titled} of {n_items} items have a title" in caplog.text
    if name.startswith("amazon-kg"):
        assert set(inter.rating) == {"1.0"}
    else:
        assert set(inter.rating) == {"1.0", "2.0", "3.0", "4.0", "5.0"}
    if name == "amazon-dense-books":
        assert items.item_id.str.endswith("X").any() and items.item_id.str.startswith("0").any()
    dataset = load_with_recbole(name, tmp_path)
    assert (dataset.user_num, dataset.item_num, dataset.inter_num) == (
        n_users + 1,
        n_items + 1,
        n_rows,
    )
