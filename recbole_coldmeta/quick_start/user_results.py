"""Per-user results of a run (``user_results: True``): rows, and the gzipped CSV they are kept in.

One row per (split, state, user): ``split`` (``valid`` or ``test``), ``state`` (the test state
of a split by state, else empty), ``user`` (the raw token, so that runs of different models on
the same split line up), ``n_rows`` (the user's query rows, or positives in a ranking
evaluation), then one column per metric (:func:`~recbole_coldmeta.evaluator.per_user_metrics`).
"""

import csv
import gzip
import io
import math
import os

from recbole_coldmeta.evaluator import per_user_metrics
from recbole_coldmeta.utils.atomic import atomic_path

#: The columns every per-user row starts with.
KEY_COLUMNS = ("split", "state", "user", "n_rows")


def user_rows(config, collector, dataset, split, state=None):
    """The per-user rows of the evaluation ``collector`` last handed to RecBole's evaluator.

    Args:
        config: the run's Config.
        collector: a :class:`~recbole_coldmeta.evaluator.ColdCollector` with ``keep_users``.
        dataset: the evaluated dataset (its user tokens).
        split: ``"valid"`` or ``"test"``.
        state: the tested state, or None.

    Returns:
        list of dict: one per user, ``KEY_COLUMNS`` then the metric columns (floats, NaN where
        undefined).
    """
    users, n_rows, columns = per_user_metrics(config, collector.last_struct)
    tokens = dataset.id2token(dataset.uid_field, users.numpy())
    rows = []
    for position, token in enumerate(tokens):
        row = {"split": split, "state": state or "", "user": str(token)}
        row["n_rows"] = int(n_rows[position])
        row.update({name: float(values[position]) for name, values in columns.items()})
        rows.append(row)
    return rows


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
    """The rows :func:`write_user_results` wrote: ``n_rows`` an int, metrics floats (NaN for
    an empty cell), ``split``, ``state`` and ``user`` strings."""
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in row.items():
            if key == "n_rows":
                row[key] = int(value)
            elif key not in KEY_COLUMNS:
                row[key] = float(value) if value != "" else math.nan
    return rows
