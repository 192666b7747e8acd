"""The raw-to-atomic converters, on tiny fake raw files (and, marked slow, on the real ML-1M)."""

import gzip
import hashlib
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from recbole_coldmeta.config import Config
from recbole_coldmeta.data import create_dataset
from recbole_coldmeta.data.converters import (
    convert_ml1m,
    default_raw_dir,
    ensure_converted,
    movielens,
)
from recbole_coldmeta.data.converters.__main__ import main
from recbole_coldmeta.utils import DataError

REAL_RAW_DIR = Path("/work/shared/datasets/movielens-1m")

USERS = [
    "1::F::1::10::48067",
    "2::M::56::16::70072",
    "3::M::25::15::55117-1234",
    "4::F::45::7::02460",
]
MOVIES = [
    "1::Toy Story (1995)::Animation|Children's|Comedy",
    "2::Misérables, Les (1995)::Drama|Musical",
    "3::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi",
    "4::Heat (1995)::Action|Crime|Thriller",
]
# No line for movie 4; CRLF line ends as in the real file.
EXTRA_INFOS = [
    "1::Toy Story::1995::G::22 Nov 1995::Animation, Adventure, Comedy::John Lasseter, Andrew "
    "Stanton(co-director)::John Lasseter (story)::Tom Hanks, Tim Allen, Don Rickles, Jim Varney"
    '::A boy named "Andy"\tloves his toys.::https://example.org/1.jpg',
    "2::Les Misérables::1995::PG-13::N/A::Drama::N/A::N/A::Jean-Paul Belmondo"
    '::"Quoted" opening.::N/A',
    "3::Star Wars::1977::PG::25 May 1977::Action, Sci-Fi::George Lucas::George Lucas::Mark Hamill,"
    " Harrison Ford::N/A::https://example.org/3.jpg",
]
# state -> (items of each user, ratings of each user). User 1 rates movie 1 in two states.
SPLITS = {
    "meta_training": ({"1": [1, 2], "2": [1, 3]}, {"1": [5, 4], "2": [3, 2]}),
    "warm_up": ({"1": [3, 1]}, {"1": [4, 2]}),
    "user_cold_testing": ({"3": [1, 2, 3]}, {"3": [1, 2, 3]}),
    "item_cold_testing": ({"2": [4]}, {"2": [5]}),
    "user_and_item_cold_testing": ({"4": [4, 2]}, {"4": [3, 4]}),
}
# Every split triple but (1, 1, 2) and (4, 2, 4), plus (4, 1, 5) that no split holds.
RATINGS = ["1::1::5", "1::2::4", "1::3::4", "2::1::3", "2::3::2", "2::4::5"]
RATINGS += ["3::1::1", "3::2::2", "3::3::3", "4::1::5", "4::4::3"]


def write_fake_raw(folder):
    """Write tiny raw files in the formats of the shared ML-1M folder; return the folder."""
    folder = Path(folder)
    (folder / "melu_splits").mkdir(parents=True)
    (folder / "users.dat").write_bytes("\n".join(USERS + [""]).encode("latin-1"))
    (folder / "movies.dat").write_bytes("\n".join(MOVIES + [""]).encode("latin-1"))
    with gzip.open(folder / "movies_extrainfos.dat.gz", "wb") as f:
        f.write("\r\n".join(EXTRA_INFOS + [""]).encode("utf-8"))
    with gzip.open(folder / "ratings_no_timestamp.reconstructed.dat.gz", "wt") as f:
        f.write("\n".join(RATINGS + [""]))
    for state, (items, ratings) in SPLITS.items():
        with gzip.open(folder / "melu_splits" / f"{state}.json.gz", "wt") as f:
            json.dump(items, f)
        with gzip.open(folder / "melu_splits" / f"{state}_y.json.gz", "wt") as f:
            json.dump(ratings, f)
    return folder


def read_atomic(path):
    """An atomic file as strings, with the type suffixes dropped from the column names."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return table.rename(columns=lambda column: column.split(":")[0])


@pytest.fixture
def raw_dir(tmp_path):
    return write_fake_raw(tmp_path / "raw" / "movielens-1m")


@pytest.fixture
def fake_provenance(raw_dir, monkeypatch):
    """Make the fake raw files the expected ones, so that verify=True passes on them."""
    for relative in movielens.EXPECTED_RAW_FILES:
        sha256 = hashlib.sha256((raw_dir / relative).read_bytes()).hexdigest()
        fake_rows = {
            "users.dat": len(USERS),
            "movies.dat": len(MOVIES),
            "movies_extrainfos.dat.gz": len(EXTRA_INFOS),
            "ratings_no_timestamp.reconstructed.dat.gz": len(RATINGS),
        }.get(relative)
        monkeypatch.setitem(movielens.EXPECTED_RAW_FILES, relative, (sha256, fake_rows))
    monkeypatch.setattr(movielens, "EXPECTED_SPLIT_TRIPLES", 12)


def test_converted_files_load_with_recbole_and_the_dataset_config(raw_dir, tmp_path):
    data_path = tmp_path / "data"
    target = convert_ml1m(raw_dir, data_path, verify=False)
    assert target == data_path / "ml-1m"
    config = Config(
        model="BPR",
        dataset="ml-1m",
        config_dict={
            "data_path": str(data_path),
            "user_inter_num_interval": "[0,inf)",  # keep the fake users, who rate 1 to 4 movies
            "show_progress": False,
            "state": "WARNING",
        },
    )
    dataset = create_dataset(config)
    assert config["TIME_FIELD"] is None
    assert (dataset.user_num, dataset.item_num, dataset.inter_num) == (5, 5, 11)  # with [PAD]
    assert set(dataset.field2id_token["melu_state"][1:]) == set(movielens.MELU_STATES)
    assert set(dataset.item_feat.columns) == {
        "item_id",
        "release_year",
        "genre",
        "rated",
        "director",
        "actor",
    }
    items = dataset.item_feat.set_index("item_id")  # a DataFrame until dataset.build()
    directors = items.loc[dataset.token2id("item_id", "1"), "director"]
    assert dataset.id2token("director", directors).tolist() == ["John_Lasseter", "Andrew_Stanton"]
    zip_codes = set(dataset.field2id_token["zip_code"]) - {"[PAD]"}
    assert zip_codes == {"48067", "70072", "55117-1234", "02460"}


def test_every_row_carries_the_state_it_came_from(raw_dir, tmp_path):
    inter = read_atomic(convert_ml1m(raw_dir, tmp_path, verify=False) / "ml-1m.inter")
    written = {
        (row.user_id, row.item_id): (row.rating, row.melu_state) for row in inter.itertuples()
    }
    for state, (items, ratings) in SPLITS.items():
        for user in items:
            for item, rating in zip(items[user], ratings[user]):
                if (state, user, item) != ("warm_up", "1", 1):
                    assert written[(user, str(item))] == (str(rating), state)


def test_duplicate_pair_keeps_the_first_state_and_is_logged(raw_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="recbole_coldmeta")
    inter = read_atomic(convert_ml1m(raw_dir, tmp_path, verify=False) / "ml-1m.inter")
    assert len(inter) == 11 and not inter.duplicated(["user_id", "item_id"]).any()
    first = inter[(inter.user_id == "1") & (inter.item_id == "1")]
    assert first[["rating", "melu_state"]].values.tolist() == [["5", "meta_training"]]
    assert "Dropped 1 duplicated (user, item) rows" in caplog.text
    assert "1 of these pairs had different ratings" in caplog.text
    assert "2 split triples are absent from the reconstructed ratings" in caplog.text
    assert "1 reconstructed triples are absent from the splits" in caplog.text


def test_user_and_item_files(raw_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="recbole_coldmeta")
    target = convert_ml1m(raw_dir, tmp_path, verify=False)
    users = read_atomic(target / "ml-1m.user")
    assert users.values.tolist() == [line.split("::") for line in USERS]
    items = read_atomic(target / "ml-1m.item").set_index("item_id")
    assert items.loc["1", "movie_title"] == "Toy Story"
    assert items.loc["1", "title_text"] == "Toy Story (1995)"
    assert items.loc["1", "genre"] == "Animation Children's Comedy"
    assert items.loc["1", "imdb_genre"] == "Animation Adventure Comedy"
    assert items.loc["1", "actor"] == "Tom_Hanks Tim_Allen Don_Rickles"  # at most 3
    assert items.loc["1", "plot_text"] == 'A boy named "Andy" loves his toys.'  # tab -> space
    assert items.loc["2", "movie_title"] == "Misérables, Les"
    assert items.loc["2", "director"] == "" and items.loc["2", "plot_text"] == '"Quoted" opening.'
    assert items.loc["3", "movie_title"] == "Star Wars: Episode IV - A New Hope"
    assert items.loc["3", "release_year"] == "1977" and items.loc["3", "plot_text"] == ""
    heat = items.loc["4"]
    assert heat["release_year"] == "1995" and heat["genre"] == "Action Crime Thriller"
    assert (heat[["rated", "director", "actor", "imdb_genre", "plot_text"]] == "").all()
    assert "1 of 4 movies have no movies_extrainfos line" in caplog.text


def test_verify_passes_on_the_expected_files(raw_dir, tmp_path, fake_provenance):
    convert_ml1m(raw_dir, tmp_path, verify=True)
    assert (tmp_path / "ml-1m" / "ml-1m.inter").is_file()


def test_sha256_mismatch_names_file_values_and_fix(raw_dir, tmp_path):
    with pytest.raises(DataError) as error:
        convert_ml1m(raw_dir, tmp_path, verify=True)
    message = str(error.value)
    expected, _ = movielens.EXPECTED_RAW_FILES["users.dat"]
    actual = hashlib.sha256((raw_dir / "users.dat").read_bytes()).hexdigest()
    assert "users.dat" in message and expected in message and actual in message
    assert "re-copy the raw file" in message and "--no_verify" in message
    assert not (tmp_path / "ml-1m").exists()


def test_row_count_mismatch_is_an_error(raw_dir, tmp_path, fake_provenance, monkeypatch):
    sha256, _ = movielens.EXPECTED_RAW_FILES["movies.dat"]
    monkeypatch.setitem(movielens.EXPECTED_RAW_FILES, "movies.dat", (sha256, 3_883))
    with pytest.raises(DataError, match=r"movies.dat' has row count 4, expected 3883"):
        convert_ml1m(raw_dir, tmp_path, verify=True)


def test_missing_raw_file_names_file_and_folder(raw_dir, tmp_path):
    (raw_dir / "melu_splits" / "warm_up_y.json.gz").unlink()
    with pytest.raises(DataError) as error:
        convert_ml1m(raw_dir, tmp_path, verify=False)
    assert "melu_splits/warm_up_y.json.gz" in str(error.value)
    assert str(raw_dir) in str(error.value)


def test_ensure_converted_converts_once(raw_dir, tmp_path, fake_provenance):
    data_path = tmp_path / "data"
    raw_root = raw_dir.parent
    assert ensure_converted("ml-1m", data_path, raw_root=raw_root) is True
    assert (data_path / "ml-1m" / "ml-1m.inter").is_file()
    assert ensure_converted("ml-1m", data_path, raw_root=raw_root) is False
    assert ensure_converted("no-such-dataset", data_path, raw_root=raw_root) is False


def test_ensure_converted_reads_the_raw_root_from_the_environment(
    raw_dir, tmp_path, fake_provenance, monkeypatch
):
    monkeypatch.setenv("COLDMETA_RAW_DATA", str(raw_dir.parent))
    assert ensure_converted("ml-1m", tmp_path / "data") is True


def test_ensure_converted_reports_missing_raw_data(tmp_path):
    with pytest.raises(DataError, match="users.dat"):
        ensure_converted("ml-1m", tmp_path / "data", raw_root=tmp_path / "nowhere")
    assert not (tmp_path / "data" / "ml-1m" / "ml-1m.inter").exists()


def test_default_raw_dir(monkeypatch):
    monkeypatch.delenv("COLDMETA_RAW_DATA", raising=False)
    assert default_raw_dir("ml-1m") == Path("../shared/datasets/movielens-1m")
    monkeypatch.setenv("COLDMETA_RAW_DATA", "/data/raw")
    assert default_raw_dir("ml-1m") == Path("/data/raw/movielens-1m")


def test_command_line_converts(raw_dir, tmp_path):
    assert main(["ml-1m", f"--raw_dir={raw_dir}", f"--out_dir={tmp_path}", "--no_verify"]) == 0
    assert len(read_atomic(tmp_path / "ml-1m" / "ml-1m.inter")) == 11


def test_command_line_error_is_one_line_and_exit_code_2(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "recbole_coldmeta.data.converters",
            "ml-1m",
            f"--raw_dir={tmp_path / 'nowhere'}",
            f"--out_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("error: Raw ML-1M file 'users.dat' not found")
    assert completed.stderr.count("\n") == 1


@pytest.mark.slow
@pytest.mark.skipif(not REAL_RAW_DIR.is_dir(), reason=f"{REAL_RAW_DIR} is absent")
def test_real_ml1m_conversion(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="recbole_coldmeta")
    start = time.perf_counter()
    target = convert_ml1m(REAL_RAW_DIR, tmp_path, verify=True)
    seconds = time.perf_counter() - start
    inter = read_atomic(target / "ml-1m.inter")
    # 1,000,209 split rows hold 1,000,206 distinct triples (checked by verify) and 1,000,205
    # distinct (user, item) pairs: 4 pairs are listed twice (MovieIDs 811 and 1741).
    assert len(inter) == 1_000_205
    assert inter.melu_state.value_counts().to_dict() == {
        "meta_training": 585_363,
        "item_cold_testing": 153_696,
        "user_cold_testing": 153_743,
        "warm_up": 65_040,
        "user_and_item_cold_testing": 42_363,
    }
    assert inter.user_id.nunique() == 6_040 and inter.item_id.nunique() == 3_704
    assert len(read_atomic(target / "ml-1m.user")) == 6_040
    assert len(read_atomic(target / "ml-1m.item")) == 3_883
    assert "9 split triples are absent from the reconstructed ratings" in caplog.text
    logging.getLogger(__name__).info(f"real ML-1M conversion took {seconds:.1f} s")
