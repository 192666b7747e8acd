"""Our cross-domain split written in the input format of PTUPCDR's code (easezyc/WSDM2022-PTUPCDR).

Their ``preprocessing.py`` (``DataPreprocessingReady``) writes, per task, headerless CSV files of
``uid, iid, y`` rows, ``pos_seq`` being a user's source history as a list literal (``[3, 17]``):

- ``train_src.csv``: every source row (``uid, iid, y``);
- ``train_tgt.csv``: the target rows of every training user;
- ``train_meta.csv``: the target rows of the training overlap users, with ``pos_seq``;
- ``test.csv``: the target rows of the cold-start test users, with ``pos_seq``;

to which the parity harness adds ``valid.csv`` (the validation users, as ``test.csv``), since their
code has no validation set. One id space for users (an overlap user has one uid in both domains)
and one for items, the two domains' items in disjoint ranges (source first), as their ``mapper``
builds them.

What is exported is our split (:class:`~recbole_coldmeta.data.dataset.CrossDomainDataset`), not
theirs: ``train_tgt`` holds no validation user (their split has none to hide), and ``pos_seq`` is
our models' history rule (the items rated above ``history_min_rating``, the last
``history_max_len`` of them in file order; their code keeps the items rated above 3 and its
``pad_sequences`` keeps the last 20, the same rule at our defaults), read from the model's own
buffers (``history_item`` / ``history_mask`` of
:class:`~recbole_coldmeta.model.abstract_recommender.CrossDomainRecommender`).

Ids: a target user keeps its RecBole id ``t`` (1..); a source user is the target user it aligns
with, or ``n_target_users + s`` for a source-only user; a source item keeps its RecBole id ``s``
(1..), a target item ``j`` becomes ``n_source_items + j``. Id 0 is never used: their attention
masks history positions whose item id is 0, so it must not be a real item (their own mapper gives
id 0 to a real source item, which their model then never attends to). ``iid_all``, the item count
their config declares, is ``n_source_items + n_target_items``: larger than every exported id, and
the item their ``seq_extractor`` gives a user with an empty history (an untrained embedding row).
"""

import csv
import json
import os

import numpy as np
import torch

from recbole_coldmeta.registry import get_model
from recbole_coldmeta.utils import DataError
from recbole_coldmeta.utils.enums import Phase, Role

#: The files of an export, in the order they are written, with their columns.
FILES = {
    "train_src.csv": ("uid", "iid", "y"),
    "train_tgt.csv": ("uid", "iid", "y"),
    "train_meta.csv": ("uid", "iid", "y", "pos_seq"),
    "valid.csv": ("uid", "iid", "y", "pos_seq"),
    "test.csv": ("uid", "iid", "y", "pos_seq"),
}
SPLIT_FILE = "split.json"


class ExportIds:
    """The exported id of every user and item of a cross-domain dataset (see the module doc)."""

    def __init__(self, dataset):
        source = dataset.source
        self.n_target_users, self.n_source_users = dataset.user_num, source.user_num
        self.n_source_items, self.n_target_items = source.item_num, dataset.item_num
        self.source_user = torch.arange(self.n_source_users) + self.n_target_users
        aligned = torch.nonzero(dataset.source_user_of > 0).squeeze(1)
        self.source_user[dataset.source_user_of[aligned]] = aligned
        self.uid_all = self.n_target_users + self.n_source_users
        self.iid_all = self.n_source_items + self.n_target_items

    def target_item(self, items):
        return items + self.n_source_items


def history_rule(config, train_dataset):
    """``(history_item, history_mask)`` ``[n_source_users, L]`` of ``config``'s model: the source
    history its transfer reads, built by the model itself (a model whose class has none, a
    non-cross-domain one, is an error)."""
    model = get_model(config["model"])(config, train_dataset)
    if not hasattr(model, "history_item"):
        raise DataError(f"{config['model']} keeps no source history; export with PTUPCDR.")
    return model.history_item, model.history_mask


def history_literals(history_item, history_mask):
    """Each source user's history as their ``pos_seq`` literal, ``'[3, 17]'`` (``'[]'``: none)."""
    literals = []
    for items, mask in zip(history_item.tolist(), history_mask.tolist()):
        kept = [str(item) for item, keep in zip(items, mask) if keep]
        literals.append("[" + ", ".join(kept) + "]")
    return literals


def _ratings(values, file_name):
    """Ratings as written: integers (their loader reads ``y`` as ``torch.long``)."""
    values = values.double().numpy()
    rounded = np.rint(values)
    if not np.array_equal(values, rounded):
        raise DataError(
            f"{file_name}: PTUPCDR's code reads ratings as integers (torch.long), and this split "
            f"has non-integer ratings such as {values[values != rounded][0]}."
        )
    return rounded.astype(np.int64)


def _write(path, columns):
    """Headerless CSV rows (their files have no header), written atomically."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(zip(*columns))
    os.replace(temporary, path)


def export_ptupcdr_split(config, train_dataset, valid_dataset, test_dataset, folder):
    """Write our split of a cross-domain dataset as PTUPCDR's input files into ``folder``.

    Args:
        config: the run's Config (its model, a cross-domain one, gives the history rule).
        train_dataset, valid_dataset, test_dataset: the parts of ``CrossDomainDataset.build()``
            (``data_preparation``'s loaders' ``.dataset``); the train part carries
            ``phase_data``, ``source`` and ``source_user_of``.
        folder: where the files go (created if needed).

    Returns:
        dict: what :data:`SPLIT_FILE` holds: ``uid_all``, ``iid_all``, ``rows`` per file, the
        split's user counts, ``empty_history_users`` (test, valid and train overlap users without
        a history item) and the split's ``split_info``.
    """
    os.makedirs(folder, exist_ok=True)
    source = train_dataset.source
    ids = ExportIds(train_dataset)
    history = history_literals(*history_rule(config, train_dataset))
    bridge_train = train_dataset.phase_data[Phase.BRIDGE][0]
    uid, iid, label = (
        train_dataset.uid_field,
        train_dataset.iid_field,
        config["LABEL_FIELD"],
    )
    source_rows = source.inter_feat
    target_parts = {
        "train_tgt.csv": train_dataset,
        "train_meta.csv": bridge_train,
        "valid.csv": valid_dataset,
        "test.csv": test_dataset,
    }
    rows = {}
    empty = {}
    source_users = source_rows[source.uid_field]
    columns = [
        ids.source_user[source_users].tolist(),
        source_rows[source.iid_field].tolist(),
        _ratings(source_rows[source.config["LABEL_FIELD"]], "train_src.csv").tolist(),
    ]
    _write(os.path.join(folder, "train_src.csv"), columns)
    rows["train_src.csv"] = len(source_rows)
    for file_name, part in target_parts.items():
        inter = part.inter_feat
        users = inter[uid]
        columns = [
            users.tolist(),
            ids.target_item(inter[iid]).tolist(),
            _ratings(inter[label], file_name).tolist(),
        ]
        if "pos_seq" in FILES[file_name]:
            source_of = train_dataset.source_user_of[users]
            if bool((source_of == 0).any()):
                raise DataError(f"{file_name}: a user without a source domain has no history.")
            columns.append([history[s] for s in source_of.tolist()])
            distinct = torch.unique(source_of).tolist()
            empty[file_name] = sum(history[s] == "[]" for s in distinct)
        _write(os.path.join(folder, file_name), columns)
        rows[file_name] = len(inter)
    role = train_dataset.user_role
    overlap = train_dataset.source_user_of > 0
    summary = {
        "uid_all": ids.uid_all,
        "iid_all": ids.iid_all,
        "rows": rows,
        "train_overlap_users": int((overlap & (role == int(Role.META_TRAIN))).sum()),
        "valid_users": int((role == int(Role.VALID_QUERY)).sum()),
        "test_users": int((role == int(Role.TEST_QUERY)).sum()),
        "empty_history_users": empty,
        "split_info": dict(getattr(train_dataset, "split_info", {}) or {}),
    }
    temporary = os.path.join(folder, f"{SPLIT_FILE}.tmp")
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, sort_keys=True)
    os.replace(temporary, os.path.join(folder, SPLIT_FILE))
    return summary
