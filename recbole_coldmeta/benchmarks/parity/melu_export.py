"""Our cold-start split written for MeLU's own code (hoyeoplee/MeLU): one row per interaction.

Their ``data_generation.py`` writes one pickle per task (support and query feature tensors and
ratings) from MeLU's state files, about 22 GB for ML-1M. The harness exports our split instead
as one headerless CSV, ``tasks.csv``, of ``user, item, rating, role`` rows (raw MovieLens ids,
the rating as an integer, ``role`` a :class:`~recbole_coldmeta.utils.enums.Role` name), and
:mod:`.melu_official` builds their feature tensors from it batch by batch:

- ``META_TRAIN``: every row of a meta-training user (their training task; they draw its
  support/query cut once, as their ``data_generation`` does);
- ``VALID_SUPPORT`` / ``VALID_QUERY``: our validation users' support and query rows;
- ``TEST_SUPPORT`` / ``TEST_QUERY``: the test users' support and query rows.

``split.json`` holds our ``split_info`` and the exported row and user counts per role.
"""

import csv
import io
import json
import os

from recbole_coldmeta.utils.atomic import atomic_write_text
from recbole_coldmeta.utils.enums import Role

TASKS_FILE = "tasks.csv"
SPLIT_FILE = "split.json"


def _rows(dataset):
    """``(user, item, rating, role)`` raw rows of one split part, in row order."""
    inter = dataset.inter_feat
    users = dataset.id2token(dataset.uid_field, inter[dataset.uid_field])
    items = dataset.id2token(dataset.iid_field, inter[dataset.iid_field])
    ratings = inter[dataset.config["RATING_FIELD"]].round().long().tolist()
    roles = [Role(int(r)).name for r in dataset.cold_roles.tolist()]
    return zip(users.tolist(), items.tolist(), ratings, roles)


def export_melu_split(train, valid, test, folder):
    """Write ``tasks.csv`` and ``split.json`` of the split parts into ``folder``.

    Args:
        train, valid, test: the three datasets of our cold-start split (``data_preparation``'s
            loaders' ``dataset``), each with ``cold_roles``.

    Returns:
        dict: the summary written to ``split.json``.
    """
    os.makedirs(folder, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    rows, users = {}, {}
    for part in (train, valid, test):
        for user, item, rating, role in _rows(part):
            writer.writerow((user, item, rating, role))
            rows[role] = rows.get(role, 0) + 1
            users.setdefault(role, set()).add(user)
    atomic_write_text(os.path.join(folder, TASKS_FILE), buffer.getvalue())
    summary = {
        "split_info": train.split_info,
        "rows": rows,
        "users": {role: len(names) for role, names in users.items()},
    }
    atomic_write_text(os.path.join(folder, SPLIT_FILE), json.dumps(summary, indent=1))
    return summary


def export_seed(model, dataset, seed, folder, config_dict=None):
    """Build our split of ``dataset`` for ``seed`` as every run of ``model`` builds it
    (``build_config`` with ``config_dict``, ``create_dataset``, ``data_preparation``) and export
    it into ``folder``; an export already there is kept. Returns its summary
    (:func:`export_melu_split`)."""
    from recbole_coldmeta.data import create_dataset, data_preparation
    from recbole_coldmeta.quick_start import build_config

    summary_file = os.path.join(folder, SPLIT_FILE)
    if os.path.isfile(summary_file):
        with open(summary_file, encoding="utf-8") as f:
            return json.load(f)
    config_dict = {**(config_dict or {}), "seed": seed, "state": "WARNING"}
    config = build_config(model, dataset, None, config_dict)
    train, valid, test = data_preparation(config, create_dataset(config))
    return export_melu_split(train.dataset, valid.dataset, test.dataset, folder)


def read_tasks(folder):
    """``{role name: {user: [(item, rating), ...]}}`` of an export, rows in file order."""
    tasks = {}
    with open(os.path.join(folder, TASKS_FILE), encoding="utf-8", newline="") as f:
        for user, item, rating, role in csv.reader(f):
            tasks.setdefault(role, {}).setdefault(user, []).append((item, int(rating)))
    return tasks
