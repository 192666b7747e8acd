"""The Scientific converter, on a tiny fake raw folder (and, marked slow, on the real files)."""

import hashlib
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recbole_coldmeta.config import Config
from recbole_coldmeta.data import create_dataset
from recbole_coldmeta.data.converters import (
    CONVERTERS,
    convert_scientific,
    default_raw_dir,
    ensure_converted,
    scientific,
)
from recbole_coldmeta.data.converters.__main__ import main
from recbole_coldmeta.data.item_features import available_modalities, load_item_features
from recbole_coldmeta.utils import DataError

REAL_RAW_DIR = Path("/work/shared/datasets/amazon-scientific-mm-seq")

INTER_HEADER_LINE = "user_id:token\titem_id:token\ttimestamp:float"
ITEM_HEADER_LINE = "item_id:token\titem_text:token"
SEQUENCE_HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token"

# Indices 0..4 in ASIN order of item2index (listed out of index order in the raw file).
ITEMS = ["B00000000A", "0000000001", "B00000000C", "B00000000D", "000000000X"]
USERS = ["AUSER0", "AUSER1", "AUSER2"]
# Each user's sequence of item indices, in time order; user 1 buys item 4 twice.
SEQUENCES = [[0, 1, 2, 3], [4, 2, 4, 1, 0], [3, 0, 1]]
# ASIN -> raw text; 000000000X has none, and Z000000000 is in no map.
TEXTS = {
    "B00000000A": 'Gorilla  Glue, 8 ounce. Industrial & Scientific "Tapes". Gorilla. ',
    "0000000001": "Shoe GOO. Adhesives. ",
    "B00000000C": "Lid, Gray. Janitorial. Rubbermaid. ",
    "B00000000D": "Caulk. Sealants. DAP. ",
    "Z000000000": "Unlisted. ",
}
FEATURE_RNG = np.random.default_rng(0)
FEATURES = {
    "Scientific.feat1CLS": FEATURE_RNG.normal(size=(5, 512)).astype(np.float32),
    "Scientific.feat3CLS": FEATURE_RNG.normal(size=(5, 512)).astype(np.float32),
}


def sequence_rows(user, prefixes):
    """Raw rows ``user<TAB>item_id_list<TAB>item_id`` of the given index prefixes."""
    return [f"{user}\t{' '.join(map(str, p[:-1]))}\t{p[-1]}" for p in prefixes]


def write_fake_raw(raw_dir, sequences=SEQUENCES):
    """Write the raw files of a tiny Scientific folder (leave-one-out splits of ``sequences``)."""
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True)
    write_lines(raw_dir / "Scientific.item2index", [f"{a}\t{i}" for i, a in enumerate(ITEMS)][::-1])
    write_lines(raw_dir / "Scientific.user2index", [f"{u}\t{i}" for i, u in enumerate(USERS)])
    splits = {"train": [], "valid": [], "test": []}
    for user, sequence in enumerate(sequences):
        # Like the real file, a user's train rows run from the longest prefix to the shortest.
        splits["train"] += sequence_rows(
            user, [sequence[:n] for n in range(len(sequence) - 2, 1, -1)]
        )
        splits["valid"] += sequence_rows(user, [sequence[:-1]])
        splits["test"] += sequence_rows(user, [sequence])
    for split, rows in splits.items():
        write_lines(raw_dir / f"Scientific.{split}.inter", [SEQUENCE_HEADER, *rows])
    text_rows = [f"{asin}\t{text}" for asin, text in TEXTS.items()]
    write_lines(raw_dir / "Scientific.text", ["item_id:token\ttext:token_seq", *text_rows])
    for relative, features in FEATURES.items():
        features.tofile(raw_dir / relative)
    return raw_dir


def write_lines(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def read_atomic(path):
    """An atomic file as strings, with the type suffixes dropped from the column names."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return table.rename(columns=lambda column: column.split(":")[0])


def first_line(path):
    with open(path, encoding="utf-8") as f:
        return f.readline().rstrip("\n")


@pytest.fixture
def raw_dir(tmp_path):
    return write_fake_raw(tmp_path / "raw" / "amazon-scientific-mm-seq")


@pytest.fixture
def fake_provenance(raw_dir, monkeypatch):
    """Make the fake raw files the expected ones, so that verify=True passes on them."""
    rows = {"train.inter": 3, "valid.inter": 3, "test.inter": 3, "user2index": 3, "text": 5}
    for relative, expected in scientific.EXPECTED_RAW_FILES.items():
        sha256 = hashlib.sha256((raw_dir / relative).read_bytes()).hexdigest()
        fake = expected._replace(sha256=sha256, rows=rows.get(relative.split(".", 1)[1], 5))
        if relative == "Scientific.test.inter":
            fake = fake._replace(users=3, items=5)
        monkeypatch.setitem(scientific.EXPECTED_RAW_FILES, relative, fake)
    monkeypatch.setattr(scientific, "EXPECTED_INTERACTIONS", 12)


def test_registry_names_the_dataset_and_its_folder(monkeypatch):
    monkeypatch.delenv("COLDMETA_RAW_DATA", raising=False)
    assert CONVERTERS["scientific"].convert is convert_scientific
    assert CONVERTERS["scientific"].raw_folder == "amazon-scientific-mm-seq"
    assert default_raw_dir("scientific") == Path("../shared/datasets/amazon-scientific-mm-seq")


def test_inter_file_rebuilds_each_sequence_with_positions(raw_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="recbole_coldmeta")
    target = convert_scientific(raw_dir, tmp_path / "data", verify=False)
    assert target == tmp_path / "data" / "scientific"
    assert first_line(target / "scientific.inter") == INTER_HEADER_LINE
    expected = [
        [USERS[user], ITEMS[item], str(position)]
        for user, sequence in enumerate(SEQUENCES)
        for position, item in enumerate(sequence)
    ]
    assert read_atomic(target / "scientific.inter").values.tolist() == expected
    assert "12 interactions of 3 users on 5 items; 1 users have an item more than once" in (
        caplog.text
    )


def test_item_file_has_one_line_of_text_per_item_in_index_order(raw_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="recbole_coldmeta")
    target = convert_scientific(raw_dir, tmp_path, verify=False)
    assert first_line(target / "scientific.item") == ITEM_HEADER_LINE
    assert read_atomic(target / "scientific.item").values.tolist() == [
        ["B00000000A", 'Gorilla Glue, 8 ounce. Industrial & Scientific "Tapes". Gorilla.'],
        ["0000000001", "Shoe GOO. Adhesives."],
        ["B00000000C", "Lid, Gray. Janitorial. Rubbermaid."],
        ["B00000000D", "Caulk. Sealants. DAP."],
        ["000000000X", ""],
    ]
    assert "1 of 5 items have no text" in caplog.text and "['000000000X']" in caplog.text
    assert "1 items of" in caplog.text and "are not in item2index" in caplog.text


def test_feature_files_keep_the_raw_rows_with_their_asins(raw_dir, tmp_path):
    target = convert_scientific(raw_dir, tmp_path, verify=False)
    ids = (target / "scientific.feat_ids").read_text(encoding="utf-8")
    assert ids == "".join(f"{item}\n" for item in ITEMS)
    assert available_modalities(target, "scientific") == ["image", "text"]
    for modality, relative in scientific.FEATURE_FILES.items():
        saved = np.load(target / f"scientific.feat_{modality}.npy")
        assert saved.dtype == np.float32 and saved.shape == (5, 512)
        np.testing.assert_array_equal(saved, FEATURES[relative])
    tokens = ["[PAD]", "000000000X", "B00000000A"]
    features, missing = load_item_features(target, "scientific", "image", tokens)
    np.testing.assert_array_equal(features[1].numpy(), FEATURES["Scientific.feat3CLS"][4])
    np.testing.assert_array_equal(features[2].numpy(), FEATURES["Scientific.feat3CLS"][0])
    assert not features[0].any() and not missing.any()
    assert not list(target.glob("*.tmp*"))


def test_converted_files_load_with_recbole(raw_dir, tmp_path):
    convert_scientific(raw_dir, tmp_path / "data", verify=False)
    dataset = load_with_recbole("scientific", tmp_path / "data")
    assert (dataset.user_num, dataset.item_num, dataset.inter_num) == (4, 6, 12)  # with [PAD]
    assert set(dataset.field2id_token["item_id"][1:]) == set(ITEMS)
    assert "item_text" not in dataset.field2id_token


def load_with_recbole(name, data_path, model="GlobalMean"):
    config = Config(
        model=model,
        dataset=name,
        config_dict={
            "data_path": str(data_path),
            "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
            "RATING_FIELD": None,
            "TIME_FIELD": "timestamp",
            "cold_start_split": False,
            "user_inter_num_interval": "[0,inf)",
            "show_progress": False,
            "state": "WARNING",
        },
    )
    return create_dataset(config)


def replace_line(path, old, new):
    text = path.read_text(encoding="utf-8")
    assert f"{old}\n" in text
    path.write_text(text.replace(f"{old}\n", f"{new}\n", 1), encoding="utf-8")


@pytest.mark.parametrize(
    "relative, old, new, match",
    [
        (
            "Scientific.valid.inter",
            "1\t4 2 4\t1",
            "1\t4 2 4\t3",
            r"valid.inter' disagrees .* AUSER1",
        ),
        ("Scientific.train.inter", "1\t4 2\t4", "1\t4 2 4\t1", r"train.inter' disagrees .* AUSER1"),
        ("Scientific.train.inter", "0\t0\t1", "2\t3\t0", r"train.inter' disagrees .* AUSER0"),
        ("Scientific.valid.inter", "2\t3\t0", "0\t0 1\t2", r"data row 3: user 0 has more than 1"),
        ("Scientific.test.inter", "2\t3 0\t1", "2\t3 0\t5", r"id '5' is not an index of .*item2"),
        ("Scientific.test.inter", "2\t3 0\t1", "3\t3 0\t1", r"id '3' is not an index of .*user2"),
        ("Scientific.user2index", "AUSER2\t2", "AUSER2\t1", r"indices of its 3 ids are not 0 to 2"),
        (
            "Scientific.item2index",
            "B00000000C\t2",
            "B00000000A\t2",
            r"'B00000000A' is listed twice",
        ),
        ("Scientific.item2index", "B00000000C\t2", "B00000000C 2", r"expected a raw id, a tab"),
        ("Scientific.text", "Shoe GOO. Adhesives. ", "Caulk.", r"lists 1 items more than once"),
    ],
)
def test_inconsistent_raw_files_are_errors(raw_dir, tmp_path, relative, old, new, match):
    if relative == "Scientific.text":
        old, new = f"0000000001\t{old}", f"B00000000D\t{new}"
    replace_line(raw_dir / relative, old, new)
    with pytest.raises(DataError, match=match) as error:
        convert_scientific(raw_dir, tmp_path / "data", verify=False)
    assert relative in str(error.value) and "Fix: re-copy" in str(error.value)
    assert not (tmp_path / "data").exists()


def test_user_without_a_test_row_is_an_error(raw_dir, tmp_path):
    path = raw_dir / "Scientific.test.inter"
    path.write_text(path.read_text().replace("2\t3 0\t1\n", ""), encoding="utf-8")
    with pytest.raises(DataError, match=r"test.inter' has no row for 1 users .*\['AUSER2'\]"):
        convert_scientific(raw_dir, tmp_path, verify=False)


@pytest.mark.parametrize(
    "values, match",
    [
        (np.zeros(5 * 512 + 3, dtype=np.float32), r"not a whole number of 512-dimensional rows"),
        (np.zeros((4, 512), dtype=np.float32), r"has 4 feature rows but .* lists 5 items"),
        (np.full((5, 512), np.nan, dtype=np.float32), r"NaN or infinite values in 5 rows"),
    ],
)
def test_bad_feature_file_is_an_error(raw_dir, tmp_path, values, match):
    values.tofile(raw_dir / "Scientific.feat3CLS")
    with pytest.raises(DataError, match=match) as error:
        convert_scientific(raw_dir, tmp_path, verify=False)
    assert "Scientific.feat3CLS" in str(error.value)


def test_missing_raw_file_names_file_folder_and_fix(raw_dir, tmp_path):
    (raw_dir / "Scientific.feat1CLS").unlink()
    with pytest.raises(DataError) as error:
        convert_scientific(raw_dir, tmp_path, verify=False)
    message = str(error.value)
    assert "Scientific.feat1CLS" in message and str(raw_dir) in message and "--raw_dir" in message


def test_sha256_mismatch_names_file_values_and_fix(raw_dir, tmp_path):
    with pytest.raises(DataError) as error:
        convert_scientific(raw_dir, tmp_path / "data", verify=True)
    message = str(error.value)
    relative = next(iter(scientific.EXPECTED_RAW_FILES))
    expected = scientific.EXPECTED_RAW_FILES[relative].sha256
    actual = hashlib.sha256((raw_dir / relative).read_bytes()).hexdigest()
    assert relative in message and expected in message and actual in message
    assert "re-copy the raw file" in message and "--no_verify" in message
    assert not (tmp_path / "data").exists()


def test_verify_passes_on_the_expected_files(raw_dir, tmp_path, fake_provenance):
    target = convert_scientific(raw_dir, tmp_path, verify=True)
    assert (target / "scientific.inter").is_file()


@pytest.mark.parametrize(
    "constant, key, field, match",
    [
        ("EXPECTED_INTERACTIONS", None, None, r"test.inter' has interaction count 12, expected 99"),
        ("EXPECTED_RAW_FILES", "Scientific.test.inter", "items", r"has item count 5, expected 99"),
        ("EXPECTED_RAW_FILES", "Scientific.train.inter", "rows", r"has row count 3, expected 99"),
        ("EXPECTED_RAW_FILES", "Scientific.item2index", "rows", r"has row count 5, expected 99"),
        ("EXPECTED_RAW_FILES", "Scientific.feat1CLS", "rows", r"has row count 5, expected 99"),
    ],
)
def test_count_mismatch_is_an_error(
    raw_dir, tmp_path, fake_provenance, monkeypatch, constant, key, field, match
):
    if key is None:
        monkeypatch.setattr(scientific, constant, 99)
    else:
        expected = scientific.EXPECTED_RAW_FILES[key]
        monkeypatch.setitem(scientific.EXPECTED_RAW_FILES, key, expected._replace(**{field: 99}))
    with pytest.raises(DataError, match=match):
        convert_scientific(raw_dir, tmp_path, verify=True)


def test_ensure_converted_converts_once(raw_dir, tmp_path, fake_provenance):
    data_path = tmp_path / "data"
    assert ensure_converted("scientific", data_path, raw_root=raw_dir.parent) is True
    assert available_modalities(data_path / "scientific", "scientific") == ["image", "text"]
    assert ensure_converted("scientific", data_path, raw_root=raw_dir.parent) is False


def test_command_line_converts_without_verify(raw_dir, tmp_path):
    command = [sys.executable, "-m", "recbole_coldmeta.data.converters", "scientific"]
    command += [f"--raw_dir={raw_dir}", f"--out_dir={tmp_path / 'data'}"]
    completed = subprocess.run(command + ["--no_verify"], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr
    assert len(read_atomic(tmp_path / "data" / "scientific" / "scientific.inter")) == 12
    assert "Wrote scientific: 12 interactions, 3 users, 5 items" in completed.stderr

    completed = subprocess.run(command, capture_output=True, text=True)
    assert completed.returncode == 2
    assert completed.stderr.startswith("error: Raw file ")
    assert "has sha256" in completed.stderr and completed.stderr.count("\n") == 1


def test_command_line_name_option(raw_dir, tmp_path):
    args = ["scientific", f"--raw_dir={raw_dir}", f"--out_dir={tmp_path}", "--no_verify"]
    assert main(args + ["--name=sci-small"]) == 0
    target = tmp_path / "sci-small"
    assert len(read_atomic(target / "sci-small.inter")) == 12
    assert available_modalities(target, "sci-small") == ["image", "text"]


@pytest.mark.slow
@pytest.mark.skipif(not REAL_RAW_DIR.is_dir(), reason=f"{REAL_RAW_DIR} is absent")
def test_real_scientific_conversion(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="recbole_coldmeta")
    target = convert_scientific(REAL_RAW_DIR, tmp_path, verify=True)
    inter = read_atomic(target / "scientific.inter")
    items = read_atomic(target / "scientific.item")
    assert len(inter) == 19_712
    assert inter.user_id.nunique() == 2_928 and inter.item_id.nunique() == 1_585
    assert len(items) == 1_585 and (items.item_text != "").all()
    assert "114 users have an item more than once" in caplog.text
    positions = inter.timestamp.astype(int).groupby(inter.user_id, sort=False)
    assert positions.apply(lambda p: p.tolist() == list(range(len(p)))).all()
    assert positions.size().between(5, 36).all()

    ids = (target / "scientific.feat_ids").read_text(encoding="utf-8").split()
    assert ids == items.item_id.tolist()
    raw_text = np.fromfile(REAL_RAW_DIR / "Scientific.feat1CLS", dtype=np.float32)
    np.testing.assert_array_equal(
        np.load(target / "scientific.feat_text.npy"), raw_text.reshape(-1, 512)
    )

    for model in ["GlobalMean", "SASRec"]:
        dataset = load_with_recbole("scientific", tmp_path, model=model)
        assert (dataset.user_num, dataset.item_num, dataset.inter_num) == (2_929, 1_586, 19_712)
    tokens = dataset.field2id_token["item_id"]
    for modality in ["text", "image"]:
        features, missing = load_item_features(target, "scientific", modality, tokens)
        assert features.shape == (1_586, 512) and not missing.any()
        assert not features[0].any() and features[1:].abs().sum(dim=1).gt(0).all()
