"""Per-user results of a run (``user_results: True``): rows, and the gzipped CSV they are kept in.

One row per (split, state, user): ``split`` (``valid`` or ``test``), ``state`` (the test state
of a split by state, else empty), ``user`` (the raw token, so that runs of different models on
the same split line up), ``n_rows`` (the user's query rows, or positives in a ranking
evaluation), with the train split: ``n_support`` (the user's support rows in it) and
``query_popularity`` (the mean number of train rows of the items of the user's evaluated rows),
then one column per metric (:func:`~recbole_coldmeta.evaluator.per_user_metrics`). Files written
before ``n_support`` and ``query_popularity`` existed read as they are, without them.
"""

import csv
import gzip
import io
import math
import os

import torch

from recbole_coldmeta.data.dataloader.support import support_slots
from recbole_coldmeta.evaluator import per_user_metrics
from recbole_coldmeta.utils.atomic import atomic_path

#: The columns every per-user row starts with.
KEY_COLUMNS = ("split", "state", "user", "n_rows")
#: Integer columns besides ``n_rows``.
COUNT_COLUMNS = ("n_rows", "n_support")


def user_rows(config, collector, dataset, split, state=None, train_dataset=None):
    """The per-user rows of the evaluation ``collector`` last handed to RecBole's evaluator.

    Args:
        config: the run's Config.
        collector: a :class:`~recbole_coldmeta.evaluator.ColdCollector` with ``keep_users``.
        dataset: the evaluated dataset (its user tokens).
        split: ``"valid"`` or ``"test"``.
        state: the tested state, or None.
        train_dataset: the split's train part, for ``n_support`` and ``query_popularity``.

    Returns:
        list of dict: one per user, ``KEY_COLUMNS``, ``n_support`` and ``query_popularity``
        (with ``train_dataset``), then the metric columns (floats, NaN where undefined).
    """
    users, n_rows, columns = per_user_metrics(config, collector.last_struct)
    tokens = dataset.id2token(dataset.uid_field, users.numpy())
    if train_dataset is not None:
        columns = {**user_context(train_dataset, dataset, users), **columns}
    rows = []
    for position, token in enumerate(tokens):
        row = {"split": split, "state": state or "", "user": str(token)}
        row["n_rows"] = int(n_rows[position])
        row.update({name: values[position].item() for name, values in columns.items()})
        rows.append(row)
    return rows


def user_context(train_dataset, dataset, users):
    """``n_support [U]`` and ``query_popularity [U]`` of ``users`` (see the module docstring).

    NOTE: on a split without support roles (``cold_start_split: False``) ``n_support`` counts
    all the user's train rows; popularity counts every train row of an item, support rows too.
    """
    train = train_dataset.inter_feat
    if hasattr(train_dataset, "cold_roles"):
        n_support = support_slots(train_dataset)[1].sum(dim=1)  # [n_users]
    else:
        n_support = torch.bincount(train[train_dataset.uid_field], minlength=dataset.user_num)
    popularity = torch.bincount(train[train_dataset.iid_field], minlength=dataset.item_num)
    inter = dataset.inter_feat
    rows_of, group = torch.unique(inter[dataset.uid_field], return_inverse=True)
    assert torch.equal(rows_of, users), "the evaluated users are the evaluated part's users"
    total = torch.zeros(len(users), dtype=torch.float64)
    total.index_add_(0, group, popularity[inter[dataset.iid_field]].double())
    count = torch.bincount(group, minlength=len(users)).double()
    return {"n_support": n_support[users], "query_popularity": total / count}


def users_file(result_file):
    """Where the per-user rows of ``result_file`` go: ``<its stem>.users.csv.gz`` beside it."""
    stem, extension = os.path.splitext(result_file)
    return f"{stem if extension == '.json' else result_file}.users.csv.gz"


def write_user_results(path, rows):
    """Write ``rows`` to ``path`` as a gzipped CSV (atomically; NaN as an empty cell).

    NOTE: floats are written with ``repr`` (every digit), so means of the file reproduce the
    run's metrics exactly; the gzip header carries no time, so the same rows give the same bytes.
    """
    columns = list(KEY_COLUMNS)
    for row in rows:
        columns += [key for key in row if key not in columns]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as f:
            f.write(gzip.compress(text.getvalue().encode("utf-8"), mtime=0))


def _cell(value):
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return value


def read_user_results(path):
    """The rows :func:`write_user_results` wrote: ``n_rows`` and ``n_support`` ints, the other
    columns floats (NaN for an empty cell), ``split``, ``state`` and ``user`` strings."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in row.items():
            if key in COUNT_COLUMNS:
                row[key] = int(value)
            elif key not in KEY_COLUMNS:
                row[key] = float(value) if value != "" else math.nan
    return rows
