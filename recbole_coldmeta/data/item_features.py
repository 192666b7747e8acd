"""Pre-computed item feature vectors (text, image, ...) stored next to a dataset's atomic files.

File format, in the dataset folder ``<dataset_dir>`` (RecBole's ``<data_path>/<name>/``):

- ``<name>.feat_ids``: UTF-8 text, one raw item token (the ``item_id`` of the ``.item`` and
  ``.inter`` files, e.g. an ASIN) per line, ``\\n`` line ends, no header; no token twice, no
  empty line.
- ``<name>.feat_<modality>.npy``: one per modality (``text``, ``image``, ...): a 2-D float32 array
  ``[N, D]`` written by ``numpy.save``, with finite values; row ``i`` is the feature of the item on
  line ``i`` of ``<name>.feat_ids``, which all modalities of the dataset share. ``D`` may differ
  between modalities.

RecBole knows nothing of these files (it reads only the atomic files it is told to), so they
travel with the dataset folder without a config entry. Models map them onto RecBole's item ids::

    tokens = dataset.field2id_token[dataset.iid_field]  # [N + 1], row 0 is "[PAD]"
    features, missing = load_item_features(dataset_dir, "scientific", "text", tokens)  # [N+1, D]

Converters write them with :func:`write_item_features`.
"""

import logging
import os
from pathlib import Path

import numpy as np
import torch

from recbole_coldmeta.data.text_encoder import encode_item_texts
from recbole_coldmeta.utils import ConfigError, DataError

logger = logging.getLogger(__name__)

#: RecBole's padding token, row 0 of ``field2id_token``; it gets a zero feature row.
PAD_TOKEN = "[PAD]"

#: What :func:`load_item_features` does with dataset items that have no feature row.
MISSING_POLICIES = ("error", "zero")

_FEATURE_PREFIX = ".feat_"
_FEATURE_SUFFIX = ".npy"
_IDS_SUFFIX = ".feat_ids"


def feature_file(dataset_dir, name, modality) -> Path:
    """``<dataset_dir>/<name>.feat_<modality>.npy``."""
    return Path(dataset_dir) / f"{name}{_FEATURE_PREFIX}{modality}{_FEATURE_SUFFIX}"


def ids_file(dataset_dir, name) -> Path:
    """``<dataset_dir>/<name>.feat_ids``."""
    return Path(dataset_dir) / f"{name}{_IDS_SUFFIX}"


def available_modalities(dataset_dir, name) -> list:
    """The sorted modalities that have a ``<name>.feat_<modality>.npy`` file in ``dataset_dir``
    (an empty list when there is none, or no such folder)."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        return []
    prefix = f"{name}{_FEATURE_PREFIX}"
    return sorted(
        path.name[len(prefix) : -len(_FEATURE_SUFFIX)]
        for path in dataset_dir.iterdir()
        if path.name.startswith(prefix)
        and path.name.endswith(_FEATURE_SUFFIX)
        and len(path.name) > len(prefix) + len(_FEATURE_SUFFIX)
        and path.is_file()
    )


def load_item_features(dataset_dir, name, modality, item_tokens, missing="error") -> tuple:
    """The ``modality`` features of the items ``item_tokens``, one row per token, in their order.

    Args:
        dataset_dir (str or Path): the folder holding ``<name>.feat_ids`` and the ``.npy`` files.
        name (str): dataset name, the stem of the files.
        modality (str): e.g. ``text`` or ``image`` (see :func:`available_modalities`).
        item_tokens (sequence of str): raw item tokens, usually RecBole's
            ``dataset.field2id_token[item_id_field]``; ``[PAD]`` gets a zero row.
        missing (str): for tokens without a feature row, ``error`` raises a DataError and ``zero``
            gives them zero rows (logged as a warning).

    Returns:
        tuple: ``features`` (float32 tensor ``[N, D]``, row ``r`` is the feature of
        ``item_tokens[r]``) and ``missing_mask`` (bool tensor ``[N]``, True for each token that had
        no feature row; False for ``[PAD]``, which is padding rather than an item).

    Raises:
        DataError: a file is missing or unreadable, the row count of the ``.npy`` file differs from
            the number of ids, an id is listed twice or empty, a value is NaN or infinite, or (with
            ``missing="error"``) an item has no feature row.
        ValueError: ``missing`` is not one of :data:`MISSING_POLICIES`.
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"Unknown missing='{missing}': use one of {list(MISSING_POLICIES)}.")
    matrix_path = feature_file(dataset_dir, name, modality)
    if not matrix_path.is_file():
        raise DataError(
            f"Item feature file '{matrix_path}' not found (modality '{modality}' of dataset "
            f"'{name}'). Fix: choose one of the modalities there "
            f"{available_modalities(dataset_dir, name)}, or (re-)convert the dataset with "
            f"python -m recbole_coldmeta.data.converters {name}."
        )
    ids = _read_ids(ids_file(dataset_dir, name))
    matrix = _read_matrix(matrix_path)
    if len(matrix) != len(ids):
        raise DataError(
            f"Item feature file '{matrix_path}' has {len(matrix)} rows but "
            f"'{ids_file(dataset_dir, name)}' lists {len(ids)} ids; row i must belong to line i. "
            f"Fix: re-convert the dataset so that both files are written together."
        )
    bad_rows = np.flatnonzero(~np.isfinite(matrix).all(axis=1))
    if len(bad_rows):
        raise DataError(
            f"Item feature file '{matrix_path}' has NaN or infinite values in {len(bad_rows)} "
            f"rows, e.g. of items {[ids[row] for row in bad_rows[:5]]}. Fix: re-convert the "
            f"dataset from an intact raw copy."
        )

    row_of_id = {item: row for row, item in enumerate(ids)}
    tokens = list(item_tokens)
    rows = np.array([row_of_id.get(token, -1) for token in tokens], dtype=np.int64)
    is_pad = np.array([token == PAD_TOKEN for token in tokens], dtype=bool)
    missing_mask = (rows < 0) & ~is_pad
    if missing_mask.any():
        unmatched = [token for token, lacks in zip(tokens, missing_mask) if lacks]
        message = (
            f"{len(unmatched)} of {len(tokens) - int(is_pad.sum())} items of dataset '{name}' "
            f"have no row in '{ids_file(dataset_dir, name)}' (modality '{modality}'), e.g. "
            f"{unmatched[:5]}"
        )
        if missing == "error":
            raise DataError(
                f"{message}. Fix: pass missing='zero' to give them zero features, or filter "
                f"them out of the dataset."
            )
        logger.warning(f"{message}; their features are zeros.")
    features = np.zeros((len(tokens), matrix.shape[1]), dtype=np.float32)
    found = rows >= 0
    features[found] = matrix[rows[found]]  # [n_found, D] rows gathered in item_tokens order
    return torch.from_numpy(features), torch.from_numpy(missing_mask)


def load_item_modalities(config, dataset, modalities) -> dict:
    """``{modality: features [N, F]}`` of every item of ``dataset`` (item-id order, row 0 zero)
    for each of ``modalities`` that the data provides.

    A modality comes from its feature file (:func:`load_item_features`; items without a row get
    zeros, counted in the log), or, for ``text`` without a file, from encoding the item file's
    ``item_text_fields`` (:func:`~recbole_coldmeta.data.text_encoder.encode_item_texts`). A
    modality the data does not provide, or whose text encoder is not installed, is dropped with
    a warning naming the reason; with ``strict_modalities: True`` that is an error.

    Raises:
        ConfigError: a modality is not available and ``strict_modalities`` is set.
    """
    tokens = dataset.field2id_token[dataset.iid_field]
    on_disk = available_modalities(dataset.dataset_path, dataset.dataset_name)
    features = {}
    for name in modalities:
        if name in on_disk:
            values, missing = load_item_features(
                dataset.dataset_path, dataset.dataset_name, name, tokens, missing="zero"
            )
            if bool(missing[1:].any()):
                logger.info(f"{int(missing[1:].sum())} items have no {name} features (zeros).")
            features[name] = values
        elif name == "text" and config["item_text_fields"]:
            try:
                features[name] = encode_item_texts(config, dataset, config["item_text_fields"])[0]
            except (ConfigError, DataError) as error:
                _drop_modality(config, name, str(error))
        elif name == "text":
            _drop_modality(config, name, "no feature file and no item_text_fields set")
        else:
            _drop_modality(config, name, "the dataset has no feature file for it")
    return features


def _drop_modality(config, name, reason):
    if config["strict_modalities"]:
        raise ConfigError(f"Modality '{name}' is not available: {reason}")
    logger.warning(f"modality '{name}' is dropped: {reason}")


def write_item_features(dataset_dir, name, item_ids, features) -> None:
    """Write ``<name>.feat_ids`` and one ``<name>.feat_<modality>.npy`` per entry of ``features``.

    Args:
        dataset_dir (str or Path): the dataset folder (it must exist).
        name (str): dataset name, the stem of the files.
        item_ids (sequence of str): raw item tokens, one per feature row.
        features (dict): modality -> array ``[len(item_ids), D]``, saved as float32.

    Each file appears only when complete (written to ``<path>.tmp<pid>`` first, then renamed).

    Raises:
        ValueError: an id is empty, contains a line break or is listed twice, or an array is not
            ``[len(item_ids), D]`` with finite values.
    """
    item_ids = [str(item) for item in item_ids]
    bad_ids = [item for item in item_ids if not item or "\n" in item or "\r" in item]
    if bad_ids or len(set(item_ids)) != len(item_ids):
        raise ValueError(f"Item ids must be unique non-empty single-line tokens: {bad_ids[:5]}")
    matrices = {
        modality: np.asarray(matrix, dtype=np.float32) for modality, matrix in features.items()
    }
    for modality, matrix in matrices.items():
        if matrix.ndim != 2 or len(matrix) != len(item_ids):
            raise ValueError(
                f"Features '{modality}' have shape {matrix.shape}, expected [{len(item_ids)}, D]."
            )
        if not np.isfinite(matrix).all():
            raise ValueError(f"Features '{modality}' have NaN or infinite values.")
    for modality, matrix in matrices.items():
        path = feature_file(dataset_dir, name, modality)
        _write_atomic_bytes(path, lambda f, matrix=matrix: np.save(f, matrix))
    content = "".join(f"{item}\n" for item in item_ids).encode("utf-8")
    _write_atomic_bytes(ids_file(dataset_dir, name), lambda f: f.write(content))


def _read_ids(path) -> list:
    """The item ids of a ``.feat_ids`` file, one per line, checked to be non-empty and unique."""
    if not path.is_file():
        raise DataError(
            f"Item feature id file '{path}' not found; it names the item of each feature row. "
            f"Fix: (re-)convert the dataset with python -m recbole_coldmeta.data.converters "
            f"{path.name.removesuffix(_IDS_SUFFIX)}."
        )
    ids = path.read_text(encoding="utf-8").split("\n")
    if ids and ids[-1] == "":
        ids.pop()  # the final line end
    empty = [number for number, item in enumerate(ids, start=1) if not item.strip()]
    if empty:
        raise DataError(
            f"Item feature id file '{path}' has empty lines {empty[:5]}. Fix: re-convert the "
            f"dataset; each line must hold one item id."
        )
    ids = [item.rstrip("\r") for item in ids]
    seen, repeated = set(), []
    for item in ids:
        if item in seen:
            repeated.append(item)
        seen.add(item)
    if repeated:
        raise DataError(
            f"Item feature id file '{path}' lists {len(repeated)} ids more than once, e.g. "
            f"{repeated[:5]}; which row would be meant? Fix: re-convert the dataset."
        )
    return ids


def _read_matrix(path) -> np.ndarray:
    """The 2-D float array of a ``.npy`` file, as float32."""
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(
            f"Item feature file '{path}' is not a readable .npy file ({error}). Fix: re-convert "
            f"the dataset."
        ) from error
    if matrix.ndim != 2 or not np.issubdtype(matrix.dtype, np.floating):
        raise DataError(
            f"Item feature file '{path}' holds a {matrix.dtype} array of shape {matrix.shape}, "
            f"expected a 2-D float array [items, D]. Fix: re-convert the dataset."
        )
    return matrix.astype(np.float32, copy=False)


def _write_atomic_bytes(path, write):
    """Call ``write(binary file)`` on ``<path>.tmp<pid>``, then rename it to ``path``."""
    tmp_path = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp_path, "wb") as f:
            write(f)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
