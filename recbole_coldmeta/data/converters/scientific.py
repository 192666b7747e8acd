"""Amazon "Scientific" (Industrial_and_Scientific) with item text and text and image features.

The raw folder is the sample of UniSRec's Scientific downstream set shipped with DeCoRec's code
(2,928 users, 1,585 items, 19,712 interactions): leave-one-out sequence files
``Scientific.{train,valid,test}.inter`` whose ids are indices into ``Scientific.user2index`` and
``Scientific.item2index``, item text in ``Scientific.text`` and two raw float32 matrices
``Scientific.feat1CLS`` (text features) and ``Scientific.feat3CLS`` (image features), 512
dimensions each, rows in ``item2index`` order.

Fields:
    - ``.inter``: ``user_id, item_id, timestamp`` with the raw reviewerIDs and ASINs, ordered by
      user (``user2index`` order) and then by position in the user's sequence.
    - ``.item``: ``item_text``, the title, categories and brand of ``Scientific.text`` on one line,
      one row per item in ``item2index`` order.
    - ``.feat_text.npy`` / ``.feat_image.npy`` and ``.feat_ids``: the two feature matrices in the
      format of :mod:`recbole_coldmeta.data.item_features` (read them with
      :func:`~recbole_coldmeta.data.item_features.load_item_features`); rows in ``item2index``
      order, the same order as the ``.item`` file.

``item_text`` is free text typed ``token`` only so that RecBole accepts the header (the same
convention as ml-1m's ``title_text``): configs never list it in ``load_col``, and text encoders read
it with ``pandas.read_csv(path, sep="\\t", dtype=str, keep_default_na=False)``.

NOTE: the raw data has no timestamps. A user's whole sequence is the test row's ``item_id_list``
followed by its ``item_id``; it is checked against the user's valid row (the sequence without its
last item) and train rows (every shorter prefix, exactly once). ``timestamp`` is the position in
the user's sequence (0, 1, 2, ...): it orders one user's items (what RecBole's sequential datasets
and time-ordered splits need) but does not compare users, so a global time split is meaningless.

NOTE: 114 users have some item more than once in their sequence; every occurrence is kept (with its
own position), as DeCoRec trains on it. RecBole keeps them too unless ``rm_dup_inter`` is set.

NOTE: ``s_pre_adj_mat.npz`` (DeCoRec's normalised user-item adjacency matrix) is not converted: it
is derived from the training sequences and models rebuild what they need from the ``.inter`` file.

Reference: Hou et al. "Towards Universal Sequence Representation Learning for Recommender Systems."
in KDD 2022. https://doi.org/10.1145/3534678.3539381, code https://github.com/RUCAIBox/UniSRec.
Sample and features: DeCoRec, "Decoupled Collaborative Refinement for Multi-Modal Sequential
Recommendations." in ACM MM 2025, code https://github.com/KIKIENAO/decorec. Data: Ni, Li and
McAuley. "Justifying Recommendations using Distantly-Labeled Reviews and Fine-Grained Aspects." in
EMNLP 2019. https://doi.org/10.18653/v1/D19-1018, https://nijianmo.github.io/amazon/.
"""

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_coldmeta.data.converters.amazon import (
    RawFile,
    _check_sha256,
    _read_tsv,
    _require,
    _title_map,
)
from recbole_coldmeta.data.converters.hints import raw_folder_fix
from recbole_coldmeta.data.converters.movielens import (
    _open_text,
    _raise_mismatch,
    _text,
    _write_atomic,
)
from recbole_coldmeta.data.item_features import write_item_features
from recbole_coldmeta.utils import DataError

logger = logging.getLogger(__name__)

#: Raw file (relative to the raw folder) -> what PROVENANCE.md states about it.
#: Source: /work/shared/datasets/amazon-scientific-mm-seq/PROVENANCE.md ("Contents", "Files").
EXPECTED_RAW_FILES = {
    "Scientific.train.inter": RawFile(
        "ad7a8cc23499cdbc3a0ba3650a438f946da433131e786b4ce4dfeae1c5590c5f", 10_928
    ),
    "Scientific.valid.inter": RawFile(
        "46b3f988b4f12ed05de4ba518e48744d7680eda42146138ffb416445d191cafb", 2_928
    ),
    "Scientific.test.inter": RawFile(
        "46077666a7e26f6f3a0b8929c15b66af83b4a21859fb0a6c25692403fd703611", 2_928, 2_928, 1_585
    ),
    "Scientific.user2index": RawFile(
        "417271f5886f37761b9e7e0da8e80e189aac034922491ade408101bc31270642", 2_928
    ),
    "Scientific.item2index": RawFile(
        "e689059637092e6dfaf6161ab71c5a3e54d96dc6a401a285c534cfc41516c022", 1_585
    ),
    "Scientific.text": RawFile(
        "2989b83daab4624c7adc289d17baea0d09f85c20545e1635f7614926ae489167", 1_585
    ),
    "Scientific.feat1CLS": RawFile(
        "45fc2f23e1cd621f67ffc8584aa0cc30adae6eb5d7a354f79a2f93e6b94f8ae2", 1_585
    ),
    "Scientific.feat3CLS": RawFile(
        "20cb8a751cbc1a84c785bc4acdd13a3f1003d4be0c3c8d4034cd1de834b43389", 1_585
    ),
}

#: Interactions of the rebuilt sequences (the test rows' full histories plus their targets).
EXPECTED_INTERACTIONS = 19_712

#: Modality (the ``feat_<modality>`` suffix of the output) -> raw feature file.
FEATURE_FILES = {"text": "Scientific.feat1CLS", "image": "Scientific.feat3CLS"}

#: Dimension of both raw feature matrices (DeCoRec's ``plm_size`` and ``img_size``).
FEATURE_DIM = 512

#: Headers of the raw files, as their first line spells them (the index maps have none).
SEQUENCE_RAW_HEADER = ("user_id:token", "item_id_list:token_seq", "item_id:token")
TEXT_RAW_HEADER = ("item_id:token", "text:token_seq")

INTER_HEADER = ("user_id:token", "item_id:token", "timestamp:float")
ITEM_HEADER = ("item_id:token", "item_text:token")

_RAW_FOLDER_FIX = raw_folder_fix("amazon-scientific-mm-seq", "Scientific.* files")


def convert_scientific(raw_dir, out_dir, name="scientific", verify=True) -> Path:
    """Write ``<out_dir>/<name>/<name>.inter|.item`` and the item feature files.

    Args:
        raw_dir (str or Path): the ``amazon-scientific-mm-seq`` folder.
        out_dir (str or Path): the RecBole ``data_path`` to write into.
        name (str): dataset name: the sub-folder and the stem of the written files.
        verify (bool): check the sha256 and counts of every raw file read, and the counts of the
            rebuilt sequences, against PROVENANCE.md.

    Returns:
        Path: the folder holding the atomic and feature files.

    Raises:
        DataError: a raw file is missing, malformed, inconsistent with the others or (with
            ``verify``) not the expected copy.
    """
    raw_dir = Path(raw_dir)
    paths = {
        relative: _require(raw_dir, relative, _RAW_FOLDER_FIX) for relative in EXPECTED_RAW_FILES
    }
    if verify:
        for relative, path in paths.items():
            _check_sha256(path, EXPECTED_RAW_FILES[relative])

    users = _read_index_map(paths["Scientific.user2index"], verify)
    items = _read_index_map(paths["Scientific.item2index"], verify)
    sequences = _read_sequences(paths, users, items, verify)
    texts = _read_texts(paths["Scientific.text"], items, verify)
    features = {
        modality: _read_features(paths[relative], len(items), verify)
        for modality, relative in FEATURE_FILES.items()
    }

    inter = pd.DataFrame(
        [
            (user, item, position)
            for user, sequence in zip(users, sequences)
            for position, item in enumerate(sequence)
        ]
    )
    target = Path(out_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    _write_atomic(
        pd.DataFrame({"item_id": items, "item_text": texts}), ITEM_HEADER, target / f"{name}.item"
    )
    write_item_features(target, name, items, features)
    # The .inter file goes last: its presence marks a finished conversion (ensure_converted).
    _write_atomic(inter, INTER_HEADER, target / f"{name}.inter")
    logger.info(
        f"Wrote {name}: {len(inter)} interactions, {len(users)} users, {len(items)} items, "
        f"features {sorted(features)} to {target}"
    )
    return target


def _read_index_map(path, verify) -> list:
    """The raw ids of a headerless ``raw id<TAB>index`` map, listed by index (0, 1, 2, ...).

    Raises:
        DataError: a line has another number of fields, the indices are not 0..n-1 each once, a raw
            id is listed twice, or (with ``verify``) the number of rows differs from PROVENANCE.md.
    """
    index_of = {}
    with _open_text(path, "utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not fields[1].isdigit():
                raise DataError(
                    f"Raw file '{path}', line {line_number}: '{line}', expected a raw id, a tab "
                    f"and an index. Fix: re-copy the raw file."
                )
            if fields[0] in index_of:
                raise DataError(
                    f"Raw file '{path}', line {line_number}: '{fields[0]}' is listed twice. Fix: "
                    f"re-copy the raw file."
                )
            index_of[fields[0]] = int(fields[1])
    expected_rows = EXPECTED_RAW_FILES[path.name].rows
    if verify and len(index_of) != expected_rows:
        _raise_mismatch(path, "row count", expected_rows, len(index_of))
    raw_ids = [None] * len(index_of)
    for raw_id, index in index_of.items():
        if index >= len(raw_ids) or raw_ids[index] is not None:
            raise DataError(
                f"Raw file '{path}': the indices of its {len(raw_ids)} ids are not 0 to "
                f"{len(raw_ids) - 1}, each once (index {index} of '{raw_id}'). Fix: re-copy the "
                f"raw file."
            )
        raw_ids[index] = raw_id
    return raw_ids


def _read_sequences(paths, users, items, verify) -> list:
    """Each user's item sequence (ASINs in time order), listed in ``users`` order.

    The sequence of a user is its test row's ``item_id_list`` followed by its ``item_id``; the
    valid row must hold the sequence without its last item and the train rows every shorter prefix
    of at least two items, each once.

    Raises:
        DataError: an id is not in its map, a user lacks a test row or has two, the splits
            disagree, or (with ``verify``) a row count or the rebuilt counts differ from
            PROVENANCE.md.
    """
    splits = {
        split: _read_tsv(
            paths[f"Scientific.{split}.inter"],
            SEQUENCE_RAW_HEADER,
            EXPECTED_RAW_FILES[f"Scientific.{split}.inter"].rows,
            verify,
        )
        for split in ("train", "valid", "test")
    }
    test_path = paths["Scientific.test.inter"]
    sequence_of = _rows_by_user(splits["test"], test_path, len(users), len(items), 1)
    missing = [users[index] for index in range(len(users)) if index not in sequence_of]
    if missing:
        raise DataError(
            f"Raw file '{test_path}' has no row for {len(missing)} users of user2index, e.g. "
            f"{missing[:5]}. Fix: re-copy the raw files."
        )
    valid_path = paths["Scientific.valid.inter"]
    valid_rows = _rows_by_user(splits["valid"], valid_path, len(users), len(items), 1)
    train_path = paths["Scientific.train.inter"]
    train_rows = _rows_by_user(splits["train"], train_path, len(users), len(items), None)
    for user, sequence in sequence_of.items():
        [sequence] = sequence
        _check_prefixes(valid_path, users[user], sequence, valid_rows.get(user, []), [-1])
        expected_lengths = list(range(2, len(sequence) - 1))
        _check_prefixes(
            train_path, users[user], sequence, train_rows.get(user, []), expected_lengths
        )

    sequences = [[items[item] for item in sequence_of[user][0]] for user in range(len(users))]
    n_interactions = sum(len(sequence) for sequence in sequences)
    n_items = len({item for sequence in sequences for item in sequence})
    repeating = sum(len(set(sequence)) < len(sequence) for sequence in sequences)
    logger.info(
        f"Scientific: {n_interactions} interactions of {len(users)} users on {n_items} items; "
        f"{repeating} users have an item more than once (every occurrence is kept)"
    )
    if verify:
        for what, expected, actual in [
            ("interaction count", EXPECTED_INTERACTIONS, n_interactions),
            ("user count", EXPECTED_RAW_FILES[test_path.name].users, len(sequences)),
            ("item count", EXPECTED_RAW_FILES[test_path.name].items, n_items),
        ]:
            if actual != expected:
                _raise_mismatch(test_path, what, expected, actual)
    return sequences


def _rows_by_user(rows, path, n_users, n_items, rows_per_user) -> dict:
    """User index -> the item index sequences (``item_id_list`` + ``item_id``) of its rows.

    Raises:
        DataError: an index is not a valid user or item index, or (``rows_per_user`` not None) a
            user has more rows than that.
    """
    sequences_of = {}
    for row_number, row in enumerate(rows.itertuples(index=False), start=1):
        user = _index(row.user_id, n_users, path, row_number, "user2index")
        sequence = [
            _index(item, n_items, path, row_number, "item2index")
            for item in [*row.item_id_list.split(), row.item_id]
        ]
        sequences_of.setdefault(user, []).append(sequence)
        if rows_per_user is not None and len(sequences_of[user]) > rows_per_user:
            raise DataError(
                f"Raw file '{path}', data row {row_number}: user {row.user_id} has more than "
                f"{rows_per_user} row. Fix: re-copy the raw file."
            )
    return sequences_of


def _index(value, size, path, row_number, map_name) -> int:
    if not value.isdigit() or int(value) >= size:
        raise DataError(
            f"Raw file '{path}', data row {row_number}: id '{value}' is not an index of "
            f"Scientific.{map_name} (0 to {size - 1}). Fix: re-copy the raw files."
        )
    return int(value)


def _check_prefixes(path, user, sequence, rows, lengths):
    """Fail unless ``rows`` are the prefixes of ``sequence`` of the given lengths, each once.

    A negative length counts from the end (``-1``: all but the last item).
    """
    expected = sorted(sequence[:length] for length in lengths)
    if sorted(rows) != expected:
        raise DataError(
            f"Raw file '{path}' disagrees with Scientific.test.inter for user {user}: its rows "
            f"(item_id_list + item_id, item indices) are {sorted(rows)}, expected the prefixes "
            f"{expected} of the test sequence {sequence}. Fix: re-copy the raw files; the three "
            f"splits must come from the same leave-one-out split."
        )


def _read_texts(path, items, verify) -> list:
    """The text of each item (whitespace collapsed), in ``items`` order; ``''`` where none."""
    table = _read_tsv(path, TEXT_RAW_HEADER, EXPECTED_RAW_FILES[path.name].rows, verify)
    text_of_item = _title_map(table["item_id"], table["text"].map(_text), path)
    untexted = [item for item in items if not text_of_item.get(item)]
    if untexted:
        logger.warning(
            f"{len(untexted)} of {len(items)} items have no text in '{path}'; their item_text is "
            f"empty: e.g. {untexted[:5]}"
        )
    unknown = len(text_of_item.keys() - set(items))
    if unknown:
        logger.info(f"{unknown} items of '{path}' are not in item2index and are left out")
    return [text_of_item.get(item, "") for item in items]


def _read_features(path, n_items, verify) -> np.ndarray:
    """The raw float32 matrix ``[N, FEATURE_DIM]`` of ``path``, rows in item2index order.

    Raises:
        DataError: the size is not a whole number of rows, the row count is not the number of items
            (or, with ``verify``, PROVENANCE.md's), or a value is NaN or infinite.
    """
    flat = np.fromfile(path, dtype=np.float32)
    if flat.size % FEATURE_DIM:
        raise DataError(
            f"Raw file '{path}' holds {flat.size} float32 values, not a whole number of "
            f"{FEATURE_DIM}-dimensional rows. Fix: re-copy the raw file."
        )
    features = flat.reshape(-1, FEATURE_DIM)  # [N * D] -> [N, D]
    expected_rows = EXPECTED_RAW_FILES[path.name].rows
    if verify and len(features) != expected_rows:
        _raise_mismatch(path, "row count", expected_rows, len(features))
    if len(features) != n_items:
        raise DataError(
            f"Raw file '{path}' has {len(features)} feature rows but Scientific.item2index lists "
            f"{n_items} items. Fix: re-copy the raw files."
        )
    bad_rows = np.flatnonzero(~np.isfinite(features).all(axis=1))
    if len(bad_rows):
        raise DataError(
            f"Raw file '{path}' has NaN or infinite values in {len(bad_rows)} rows (item indices "
            f"{bad_rows[:5].tolist()}). Fix: re-copy the raw file."
        )
    return features
