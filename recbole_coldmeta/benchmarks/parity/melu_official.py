"""MeLU's own code (hoyeoplee/MeLU) on an exported ML-1M split, in one process.

Usage (started by :mod:`recbole_coldmeta.benchmarks.parity.melu`, one process per seed)::

    python -m recbole_coldmeta.benchmarks.parity.melu_official --authors_code=PATH
        --data_dir=EXPORT --raw_dir=MOVIELENS_1M --seed=2020 --result_file=RESULT.json
        [--epochs 20]

Their ``MeLU.py`` (model, local and global update), ``embeddings.py``, ``options.py`` (their
configuration) and ``data_generation.py`` (``item_converting`` / ``user_converting``: the
feature encoding of a movie and a user, with their ``movielens/ml-1m/m_*.txt`` vocabularies) are
imported from ``--authors_code`` (a local checkout; its folder goes on ``sys.path`` in this
process only) and run unchanged, but for:

- **the smallest adaptation**: their ``forward`` moves the fast weights in and out of the model
  with ``load_state_dict``; under torch >= 1.5 that copy bumps the parameters' version counters
  and the backward pass stops ("modified by an inplace operation"). The model *instance* gets a
  ``load_state_dict`` that copies the values through ``.data``, which is what torch 1.1 (their
  requirement) did, so the computation is theirs. Nothing global is patched;
- **their data, from our split**: their ``data_generation`` writes a pickle per task (about
  22 GB); here the feature rows of a task are built when its batch is trained, from the movie
  and user encodings of their functions (:func:`encode_features`, computed once, kept as one
  ``uint8`` table). The tasks are ours (:mod:`.melu_export`): each meta-training user's rows are
  cut once into support and query by their rule (shuffle, the last 10 are the query, seeded
  ``random``); validation and test users keep our support / query rows;
- **their training loop** (``model_training.training``: shuffle the tasks, batches of
  ``batch_size``, ``global_update``; incomplete last batch dropped) is driven here one epoch at
  a time, because their function needs every task's tensors in memory at once; after each epoch
  the validation and test users are adapted with their ``forward`` (``inner`` local updates on
  the support set) and scored on their query rows. The result is the test MAE / RMSE of the epoch
  with the lowest validation MAE (their code has no validation and keeps the last epoch; that
  number is kept too). Their configuration is their ``options.config`` (``lr`` 5e-5,
  ``local_lr`` 5e-6, ``inner`` 1, ``batch_size`` 32, ``num_epoch`` 20, embeddings of 32, two
  layers of 64) on the CPU.

The result file (JSON): the curve (``valid_mae, valid_rmse, test_mae, test_rmse`` per epoch),
the selected and the last epoch, task counts, tasks per second of training, seconds.
"""

import argparse
import functools
import gzip
import importlib
import os
import random
import sys
import time

import numpy as np

from recbole_coldmeta.benchmarks.parity.jobs import check_checkout, select_on_validation, write_json
from recbole_coldmeta.benchmarks.parity.melu_export import read_tasks

#: Files of their checkout this harness imports or reads.
REQUIRED_FILES = ("MeLU.py", "embeddings.py", "options.py", "data_generation.py")
VOCABULARY = ("rate", "genre", "actor", "director", "gender", "age", "occupation", "zipcode")
#: Their ``dataset.movielens_1m`` column names of the raw files.
ITEM_COLUMNS = ["movie_id", "title", "year", "rate", "released", "genre", "director", "writer",
                "actors", "plot", "poster"]  # fmt: skip
USER_COLUMNS = ["user_id", "gender", "age", "occupation_code", "zip"]
QUERY_SIZE = 10  # their data_generation: the last 10 of a shuffled task are its query


def check_authors_code(path):
    """The checkout folder ``path``, made absolute; ``ValueError`` when it is not one."""
    needed = list(REQUIRED_FILES) + [f"movielens/ml-1m/m_{name}.txt" for name in VOCABULARY]
    return check_checkout(path, "hoyeoplee/MeLU", needed, "MeLU.py, options.py, movielens/ml-1m/")


def raw_file(raw_dir, name):
    """``raw_dir/name``, or its ``.gz``; ``ValueError`` naming both when neither exists."""
    for candidate in (name, f"{name}.gz"):
        path = os.path.join(raw_dir, candidate)
        if os.path.isfile(path):
            return path
    raise ValueError(f"--raw_dir={raw_dir!r} has no {name} (or {name}.gz): give the MovieLens-1M "
                     f"folder with MeLU's movies_extrainfos.dat and users.dat.")  # fmt: skip


def read_raw(path, names):
    import pandas as pd

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return pd.read_csv(f, names=names, sep="::", engine="python")


def encode_features(generation, authors_code, raw_dir):
    """Their encoding of every movie and user: ``({movie id: row}, items uint8 [N, 10242],
    {user id: row}, users int64 [U, 4])``, by their ``item_converting`` / ``user_converting``."""
    import torch

    lists = {
        name: generation.load_list(os.path.join(authors_code, f"movielens/ml-1m/m_{name}.txt"))
        for name in VOCABULARY
    }
    movies = read_raw(raw_file(raw_dir, "movies_extrainfos.dat"), ITEM_COLUMNS)
    people = read_raw(raw_file(raw_dir, "users.dat"), USER_COLUMNS)
    item_rows, items = {}, []
    for _, row in movies.iterrows():
        encoded = generation.item_converting(
            row, lists["rate"], lists["genre"], lists["director"], lists["actor"]
        )
        item_rows[str(row["movie_id"])] = len(items)
        items.append(encoded.to(torch.uint8))
    user_rows, users = {}, []
    for _, row in people.iterrows():
        encoded = generation.user_converting(
            row, lists["gender"], lists["age"], lists["occupation"], lists["zipcode"]
        )
        user_rows[str(row["user_id"])] = len(users)
        users.append(encoded)
    return item_rows, torch.cat(items), user_rows, torch.cat(users)


class Tasks:
    """Feature tensors of tasks, built on demand from the encoded tables."""

    def __init__(self, item_rows, items, user_rows, users):
        self.item_rows, self.items, self.user_rows, self.users = item_rows, items, user_rows, users

    def x(self, user, rows):
        """``[len(rows), 10246]`` int64: each row's movie encoding, then the user's."""
        import torch

        movies = self.items[[self.item_rows[item] for item, _ in rows]].long()
        person = self.users[self.user_rows[user]].expand(len(rows), -1)
        return torch.cat((movies, person), dim=1)

    @staticmethod
    def y(rows):
        import torch

        return torch.FloatTensor([rating for _, rating in rows])


def load_values(module, state):
    """``module.load_state_dict(state)`` as torch 1.1 did it: values copied through ``.data``,
    so that autograd's version counters do not move (see the module doc)."""
    for name, parameter in module.named_parameters():
        parameter.data.copy_(state[name])


def import_authors(authors_code):
    """Their ``options``, ``MeLU`` and ``data_generation`` modules from the checkout."""
    sys.path.insert(0, authors_code)
    names = ("options", "MeLU", "data_generation")
    return [importlib.import_module(name) for name in names]


def meta_train_cut(tasks, seed):
    """Each meta-training user's ``(support, query)``: their rule, one seeded shuffle each."""
    rng = random.Random(seed)
    cut = []
    for user in sorted(tasks, key=int):
        rows = list(tasks[user])
        order = list(range(len(rows)))
        rng.shuffle(order)
        shuffled = [rows[i] for i in order]
        cut.append((user, shuffled[:-QUERY_SIZE], shuffled[-QUERY_SIZE:]))
    return cut


def evaluate(melu, tasks, support, query, inner):
    """MAE and RMSE over every query row of the users in ``query``, each adapted on its
    ``support`` rows with their ``forward``."""
    import torch

    errors = []
    for user in sorted(query, key=int):
        prediction = melu.forward(
            tasks.x(user, support[user]), tasks.y(support[user]), tasks.x(user, query[user]), inner
        )
        errors.append(prediction.detach().view(-1) - tasks.y(query[user]))
    errors = torch.cat(errors)
    return float(errors.abs().mean()), float(errors.pow(2).mean().sqrt())


def run_official(authors_code, data_dir, raw_dir, seed, epochs=None):
    """Train their MeLU on the export in ``data_dir``; the result dict (see the module doc)."""
    import torch

    options, melu_module, generation = import_authors(authors_code)
    config = dict(options.config, use_cuda=False)
    epochs = config["num_epoch"] if epochs is None else epochs
    rows = read_tasks(data_dir)
    tasks = Tasks(*encode_features(generation, authors_code, raw_dir))
    dropped = {}  # rows of a movie their files do not describe (none in ML-1M's states)
    for role, users in rows.items():
        for user, task in users.items():
            users[user] = [row for row in task if row[0] in tasks.item_rows]
            dropped[role] = dropped.get(role, 0) + len(task) - len(users[user])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    melu = melu_module.MeLU(config)
    melu.model.load_state_dict = functools.partial(load_values, melu.model)
    training = meta_train_cut(rows["META_TRAIN"], seed)
    batch_size, inner = config["batch_size"], config["inner"]
    curve, train_seconds, trained = [], 0.0, 0
    start = time.perf_counter()
    for _ in range(epochs):
        began = time.perf_counter()
        random.shuffle(training)  # their training(): shuffled every epoch, full batches only
        for first in range(0, len(training) - batch_size + 1, batch_size):
            batch = training[first : first + batch_size]
            melu.global_update(
                [tasks.x(u, s) for u, s, _ in batch],
                [tasks.y(s) for _, s, _ in batch],
                [tasks.x(u, q) for u, _, q in batch],
                [tasks.y(q) for _, _, q in batch],
                inner,
            )
            trained += len(batch)
        train_seconds += time.perf_counter() - began
        valid_mae, valid_rmse = evaluate(
            melu, tasks, rows["VALID_SUPPORT"], rows["VALID_QUERY"], inner
        )
        test_mae, test_rmse = evaluate(melu, tasks, rows["TEST_SUPPORT"], rows["TEST_QUERY"], inner)
        curve.append({"valid_mae": valid_mae, "valid_rmse": valid_rmse,
                      "test_mae": test_mae, "test_rmse": test_rmse})  # fmt: skip
    return {
        "seed": seed,
        "config": {key: config[key] for key in ("lr", "local_lr", "inner", "batch_size")},
        "epochs": epochs,
        "tasks": {role: len(users) for role, users in rows.items()},
        "dropped_rows": dropped,
        "curve": curve,
        "selected": select_on_validation(curve),
        "last": {"epoch": len(curve), **curve[-1]},
        "tasks_per_second": round(trained / max(train_seconds, 1e-9), 1),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--authors_code", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--raw_dir", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=None, help="default: their num_epoch")
    parser.add_argument("--result_file", required=True)
    options = parser.parse_args(argv)
    authors_code = check_authors_code(options.authors_code)
    result = run_official(
        authors_code, options.data_dir, options.raw_dir, options.seed, options.epochs
    )
    write_json(options.result_file, result)


if __name__ == "__main__":
    main()
