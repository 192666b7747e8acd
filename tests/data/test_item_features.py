"""Item feature files: writing, loading in RecBole's token order, and every error path."""

import logging

import numpy as np
import pytest
import torch

from recbole_coldmeta.data.item_features import (
    available_modalities,
    feature_file,
    ids_file,
    load_item_features,
    write_item_features,
)
from recbole_coldmeta.utils import DataError

IDS = ["B000A", "0001X", "B000C"]
TEXT = np.arange(12, dtype=np.float32).reshape(3, 4) + 1  # [3, 4], no zero row
IMAGE = -np.arange(6, dtype=np.float32).reshape(3, 2) - 1  # [3, 2]


@pytest.fixture
def dataset_dir(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    write_item_features(folder, "toy", IDS, {"text": TEXT, "image": IMAGE.astype(np.float64)})
    return folder


def test_file_format(dataset_dir):
    assert (dataset_dir / "toy.feat_ids").read_text(encoding="utf-8") == "B000A\n0001X\nB000C\n"
    text = np.load(dataset_dir / "toy.feat_text.npy")
    image = np.load(dataset_dir / "toy.feat_image.npy")
    assert text.dtype == image.dtype == np.float32 and image.shape == (3, 2)
    np.testing.assert_array_equal(text, TEXT)
    assert sorted(path.name for path in dataset_dir.iterdir()) == [
        "toy.feat_ids",
        "toy.feat_image.npy",
        "toy.feat_text.npy",
    ]


def test_rows_follow_item_tokens_and_pad_gets_zeros(dataset_dir):
    tokens = np.array(["[PAD]", "B000C", "B000A", "0001X"])  # like RecBole's field2id_token
    features, missing = load_item_features(dataset_dir, "toy", "text", tokens)
    assert features.dtype == torch.float32 and features.shape == (4, 4)
    np.testing.assert_array_equal(
        features.numpy(), np.stack([np.zeros(4), TEXT[2], TEXT[0], TEXT[1]])
    )
    assert missing.dtype == torch.bool and missing.tolist() == [False] * 4
    image, _ = load_item_features(dataset_dir, "toy", "image", ["0001X"])
    np.testing.assert_array_equal(image.numpy(), IMAGE[[1]])


def test_available_modalities(dataset_dir, tmp_path):
    np.save(dataset_dir / "other.feat_audio.npy", TEXT)  # another dataset's file
    (dataset_dir / "toy.feat_.npy").write_bytes(b"")  # no modality name
    (dataset_dir / "toy.feat_ids.txt").write_text("")
    assert available_modalities(dataset_dir, "toy") == ["image", "text"]
    assert available_modalities(dataset_dir, "other") == ["audio"]
    assert available_modalities(tmp_path / "nowhere", "toy") == []


def test_missing_feature_file_lists_the_modalities_there(dataset_dir):
    with pytest.raises(DataError) as error:
        load_item_features(dataset_dir, "toy", "audio", IDS)
    message = str(error.value)
    assert str(feature_file(dataset_dir, "toy", "audio")) in message
    assert "['image', 'text']" in message and "python -m recbole_coldmeta.data.converters toy" in (
        message
    )


def test_missing_ids_file(dataset_dir):
    ids_file(dataset_dir, "toy").unlink()
    with pytest.raises(DataError, match=r"toy.feat_ids' not found.*converters toy"):
        load_item_features(dataset_dir, "toy", "text", IDS)


def test_row_count_differs_from_id_count(dataset_dir):
    np.save(feature_file(dataset_dir, "toy", "text"), TEXT[:2])
    with pytest.raises(DataError, match=r"toy.feat_text.npy' has 2 rows but .*feat_ids' lists 3"):
        load_item_features(dataset_dir, "toy", "text", IDS)


@pytest.mark.parametrize(
    "content, match",
    [
        ("B000A\nB000C\nB000C\n", r"lists 1 ids more than once, e.g. \['B000C'\]"),
        ("B000A\n\nB000C\n", r"has empty lines \[2\]"),
    ],
)
def test_bad_ids_file(dataset_dir, content, match):
    ids_file(dataset_dir, "toy").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=match) as error:
        load_item_features(dataset_dir, "toy", "text", IDS)
    assert "toy.feat_ids" in str(error.value) and "Fix:" in str(error.value)


def test_ids_file_with_crlf_line_ends_loads(dataset_dir):
    ids_file(dataset_dir, "toy").write_bytes(b"B000A\r\n0001X\r\nB000C\r\n")
    features, _ = load_item_features(dataset_dir, "toy", "text", ["B000C"])
    np.testing.assert_array_equal(features.numpy(), TEXT[[2]])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_an_error(dataset_dir, bad):
    values = TEXT.copy()
    values[1, 2] = bad
    np.save(feature_file(dataset_dir, "toy", "text"), values)
    with pytest.raises(
        DataError, match=r"NaN or infinite values in 1 rows, e.g. of items \['0001X'"
    ):
        load_item_features(dataset_dir, "toy", "text", IDS)


@pytest.mark.parametrize(
    "array, match",
    [
        (np.arange(3, dtype=np.float32), r"float32 array of shape \(3,\), expected a 2-D float"),
        (np.arange(6).reshape(3, 2), r"int64 array of shape \(3, 2\)"),
    ],
)
def test_feature_file_must_be_a_2d_float_array(dataset_dir, array, match):
    np.save(feature_file(dataset_dir, "toy", "text"), array)
    with pytest.raises(DataError, match=match):
        load_item_features(dataset_dir, "toy", "text", IDS)


def test_unreadable_feature_file(dataset_dir):
    feature_file(dataset_dir, "toy", "text").write_bytes(b"not numpy")
    with pytest.raises(DataError, match=r"toy.feat_text.npy' is not a readable .npy file"):
        load_item_features(dataset_dir, "toy", "text", IDS)


def test_items_without_features_are_an_error_by_default(dataset_dir):
    tokens = ["[PAD]", "B000A", "NEW1", "NEW2", "NEW3", "NEW4", "NEW5", "NEW6"]
    with pytest.raises(DataError) as error:
        load_item_features(dataset_dir, "toy", "image", tokens)
    message = str(error.value)
    assert "6 of 7 items of dataset 'toy' have no row in" in message
    assert "['NEW1', 'NEW2', 'NEW3', 'NEW4', 'NEW5']" in message and "NEW6" not in message
    assert "missing='zero'" in message


def test_items_without_features_can_get_zeros(dataset_dir, caplog):
    caplog.set_level(logging.WARNING, logger="recbole_coldmeta")
    tokens = ["[PAD]", "NEW", "B000C"]
    features, missing = load_item_features(dataset_dir, "toy", "text", tokens, missing="zero")
    np.testing.assert_array_equal(features.numpy(), np.stack([np.zeros(4), np.zeros(4), TEXT[2]]))
    assert missing.tolist() == [False, True, False]
    assert "1 of 2 items of dataset 'toy' have no row" in caplog.text
    assert "their features are zeros" in caplog.text


def test_unknown_missing_policy(dataset_dir):
    with pytest.raises(ValueError, match=r"Unknown missing='skip'"):
        load_item_features(dataset_dir, "toy", "text", IDS, missing="skip")


@pytest.mark.parametrize(
    "ids, features, match",
    [
        (["A", "A"], {"text": np.ones((2, 3))}, r"unique non-empty single-line"),
        (["A", ""], {"text": np.ones((2, 3))}, r"unique non-empty single-line"),
        (["A", "B\nC"], {"text": np.ones((2, 3))}, r"unique non-empty single-line"),
        (["A", "B"], {"text": np.ones((3, 3))}, r"'text' have shape \(3, 3\), expected \[2, D\]"),
        (["A", "B"], {"text": np.ones(2)}, r"'text' have shape \(2,\)"),
        (["A", "B"], {"text": np.array([[1.0], [np.nan]])}, r"'text' have NaN or infinite"),
    ],
)
def test_write_rejects_bad_input(tmp_path, ids, features, match):
    with pytest.raises(ValueError, match=match):
        write_item_features(tmp_path, "toy", ids, features)
    assert not list(tmp_path.iterdir())


def test_write_checks_every_modality_before_writing_any(tmp_path):
    features = {"text": np.ones((2, 3)), "image": np.ones((3, 3))}
    with pytest.raises(ValueError, match=r"'image' have shape"):
        write_item_features(tmp_path, "toy", ["A", "B"], features)
    assert not list(tmp_path.iterdir())
