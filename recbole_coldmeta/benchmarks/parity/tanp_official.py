"""TaNP's own code (IIEdm/TaNP) on an exported user cold-start split, in one process.

Usage (started by :mod:`recbole_coldmeta.benchmarks.parity.tanp`, one process per seed)::

    python -m recbole_coldmeta.benchmarks.parity.tanp_official --authors_code=PATH
        --data_dir=EXPORT --seed=2020 --result_file=RESULT.json [--epochs 100] [--start_at_mean]

Their ``TaNP.py`` (``Trainer``: the neural process ``NP`` of ``embeddings_TaNP.py`` — item and
user towers, latent encoder, task encoder, the task-identity ``MemoryUnit``, the FiLM
``Decoder`` — their loss with its KL and clustering terms, their Adam) is imported from
``--authors_code`` (a local checkout; its folder goes on ``sys.path`` in this process only) and
run unchanged, with the hyper-parameters of their ``train.sh`` (:func:`their_config`: read from
the checkout, not copied). No code adaptation is needed under torch 2.

NOTE: what is ours, each a decision:

- **their input, from our split**: their ``utils/loader.py`` gives every row the one-hot vector
  of its item followed by the one-hot vector of its user (``to_onehot_dict`` over all items and
  all users, ``torch.cat((item_dict[m], user_dict[u]), 1)``, int64); :class:`OneHotTasks` builds
  the same rows from the export (:mod:`.melu_export`), a task's rows when its batch needs them,
  instead of their per-task pickles. Index order: the sorted raw ids;
- **the users, from our split**: their random 70/10/20 user split is replaced by ours. A
  validation or test user's support rows are their support set and its query rows their query
  set (their ``query_rec`` scores the query from the support as context). A meta-training
  user is cut once, seeded, by their rule (shuffle; the first ``support_size`` rows are the
  support, the rest the query: :func:`meta_train_cut`). Their size filter (a task needs
  ``support_size + query_size`` = 30 to ``max_len`` = 200 rows) is not applied: it would drop a
  third of our meta-training users (139 of 407 on ml-100k, seed 2020), and their training joins
  support and query anyway and redraws context and target from the union every step
  (``new_context_target_split``). It is kept only where their code needs it: a user with at
  most ``max(support_size, context_min)`` rows (an empty query, and a context of at least
  ``context_min`` rows out of the union cannot be drawn) is left out, counted;
- **every test row is scored**: their preparation deletes a test user's rows of items no
  training user rated; here all of our query rows are scored, as in our runs (their one-hot
  input has an untrained column for such an item; the count is in the result). Their model also
  embeds the one-hot *user* id, so a cold user's column is never trained and keeps its random
  initial value: that is their method, reported as is;
- **their training loop** (``TaNP_training.training``: shuffle the tasks, full batches of
  ``batch_size``, ``global_update``) is driven one epoch at a time; after each epoch the
  validation and test users are scored with their ``NP`` in evaluation mode (as ``query_rec``
  does; it draws ``z`` from the context's Gaussian: one draw, their method), inside
  ``torch.random.fork_rng`` so that evaluation leaves their training's random stream alone.
  The result is the test MAE / RMSE of the epoch with the lowest validation MAE (their code has
  no validation and reports every epoch's test ranking metrics; their last epoch is kept too).
  Seeding as their ``seed_everything`` (``random``, numpy, torch); CPU;
- **the start, by** ``--start_at_mean``: their decoder predicts the rating itself and starts
  near 0; ours predicts the training mean plus the decoder's output. With the flag, the bias of
  their decoder's output layer (``np.xz_to_y.final_projection``) is set to the mean rating of
  the training tasks after their model is built, so both start at the mean (a diagnostic row,
  as PTUPCDR's equal initialisation; without it, their code as it is).

The result file (JSON): the curve (``valid_mae, valid_rmse, test_mae, test_rmse`` per epoch),
the selected and the last epoch, their configuration, the output bias set at the start (or
null), task and row counts, tasks per second of training, seconds.
"""

import argparse
import ast
import importlib
import os
import random
import re
import sys
import time

import numpy as np

from recbole_coldmeta.benchmarks.parity.jobs import check_checkout, select_on_validation, write_json
from recbole_coldmeta.benchmarks.parity.melu_export import read_tasks

#: Files of their checkout this harness imports or reads.
REQUIRED_FILES = ("TaNP.py", "embeddings_TaNP.py", "train.sh")
#: The ``train.sh`` variables their ``Trainer`` and this harness read.
CONFIG_KEYS = (
    "first_embedding_dim", "second_embedding_dim", "z1_dim", "z2_dim", "z_dim", "enc_h1_dim",
    "enc_h2_dim", "taskenc_h1_dim", "taskenc_h2_dim", "taskenc_final_dim", "clusters_k",
    "temperature", "lambda", "dec_h1_dim", "dec_h2_dim", "dec_h3_dim", "dropout_rate", "lr",
    "num_epoch", "batch_size", "support_size", "context_min",
)  # fmt: skip
#: A ``name=value`` line of ``train.sh`` (the lines before their ``python train_TaNP.py``).
ASSIGNMENT = re.compile(r"^(\w+)=(\S+)$")


def check_authors_code(path):
    """The checkout folder ``path``, made absolute; ``ValueError`` when it is not one."""
    return check_checkout(
        path, "IIEdm/TaNP", REQUIRED_FILES, "TaNP.py and train.sh: their repository's TaNP/ folder"
    )


def their_config(authors_code):
    """Their hyper-parameters: the ``name=value`` lines of their ``train.sh``, each value read as
    a Python literal (``'adam'``, ``0.0001``, ``100``); ``ValueError`` naming the missing ones."""
    path = os.path.join(authors_code, "train.sh")
    config = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            match = ASSIGNMENT.match(line.strip())
            if match:
                try:
                    config[match[1]] = ast.literal_eval(match[2])
                except (ValueError, SyntaxError):
                    config[match[1]] = match[2]
    missing = [key for key in CONFIG_KEYS if key not in config]
    if missing:
        raise ValueError(
            f"{path} sets no {', '.join(missing)}: give a checkout of IIEdm/TaNP whose train.sh "
            f"holds their hyper-parameters."
        )
    return config


class OneHotTasks:
    """Their input rows of tasks: one-hot item ⊕ one-hot user, built on demand.

    Args:
        items, users: every raw item / user id of the export; index order is their sorted order.
    """

    def __init__(self, items, users):
        self.item_index = {item: i for i, item in enumerate(sorted(items))}
        self.user_index = {user: i for i, user in enumerate(sorted(users))}

    @classmethod
    def of(cls, tasks):
        """The encoding of every item and user of ``read_tasks``' ``{role: {user: rows}}``."""
        users = {user for role in tasks.values() for user in role}
        items = {item for role in tasks.values() for rows in role.values() for item, _ in rows}
        return cls(items, users)

    @property
    def dims(self):
        """``(if_dim, uf_dim)``: their one-hot widths, the number of items and of users."""
        return len(self.item_index), len(self.user_index)

    def x(self, user, rows):
        """``[len(rows), if_dim + uf_dim]`` int64: each row's item one-hot, then its user's."""
        import torch

        n_items, n_users = self.dims
        x = torch.zeros(len(rows), n_items + n_users, dtype=torch.long)
        x[torch.arange(len(rows)), [self.item_index[item] for item, _ in rows]] = 1
        x[:, n_items + self.user_index[user]] = 1
        return x

    @staticmethod
    def y(rows):
        import torch

        return torch.FloatTensor([rating for _, rating in rows])


def meta_train_cut(tasks, support_size, minimum, seed):
    """Each meta-training user's ``(user, support, query)`` by their rule (one seeded shuffle;
    the first ``support_size`` rows are the support, the rest the query), users with at most
    ``minimum`` rows left out; returns ``(cut, number left out)``."""
    rng = random.Random(seed)
    cut, left_out = [], 0
    for user in sorted(tasks):
        rows = list(tasks[user])
        if len(rows) <= minimum:
            left_out += 1
            continue
        rng.shuffle(rows)
        cut.append((user, rows[:support_size], rows[support_size:]))
    return cut, left_out


def import_authors(authors_code):
    """Their ``TaNP`` module from the checkout."""
    sys.path.insert(0, authors_code)
    return importlib.import_module("TaNP")


def evaluate(trainer, tasks, support, query):
    """MAE and RMSE over every query row of the users in ``query``, each scored by their ``NP``
    in evaluation mode with its ``support`` rows as the context (their ``query_rec``)."""
    import torch

    trainer.eval()
    errors = []
    with torch.no_grad(), torch.random.fork_rng():
        for user in sorted(query):
            x_query, y_query = tasks.x(user, query[user]), tasks.y(query[user])
            prediction = trainer.np(
                tasks.x(user, support[user]), tasks.y(support[user]), x_query, y_query
            )
            errors.append(prediction.view(-1) - y_query)
    errors = torch.cat(errors)
    return float(errors.abs().mean()), float(errors.pow(2).mean().sqrt())


def start_at_mean(trainer, training):
    """Set the bias of their decoder's output layer to the mean rating of the ``training``
    tasks' rows (``--start_at_mean``); returns that mean."""
    ratings = [rating for _, support, query in training for _, rating in support + query]
    mean = sum(ratings) / len(ratings)
    trainer.np.xz_to_y.final_projection.bias.data.fill_(mean)
    return mean


def run_official(authors_code, data_dir, seed, epochs=None, at_mean=False):
    """Train their TaNP on the export in ``data_dir``; the result dict (see the module doc)."""
    import torch

    module = import_authors(authors_code)
    config = their_config(authors_code)
    epochs = config["num_epoch"] if epochs is None else epochs
    rows = read_tasks(data_dir)
    tasks = OneHotTasks.of(rows)
    if_dim, uf_dim = tasks.dims
    opt = dict(config, if_dim=if_dim, uf_dim=uf_dim, use_cuda=False, seed=seed)
    random.seed(seed)  # their seed_everything
    np.random.seed(seed)
    torch.manual_seed(seed)
    trainer = module.Trainer(opt)
    minimum = max(config["support_size"], config["context_min"])
    training, left_out = meta_train_cut(rows["META_TRAIN"], config["support_size"], minimum, seed)
    bias_start = start_at_mean(trainer, training) if at_mean else None
    trained_items = {item for _, support, query in training for item, _ in support + query}
    unseen = sum(
        item not in trained_items for task in rows["TEST_QUERY"].values() for item, _ in task
    )
    batch_size = config["batch_size"]
    curve, train_seconds, trained = [], 0.0, 0
    start = time.perf_counter()
    for _ in range(epochs):
        began = time.perf_counter()
        trainer.train()
        random.shuffle(training)  # their training(): shuffled every epoch, full batches only
        for first in range(0, len(training) - batch_size + 1, batch_size):
            batch = training[first : first + batch_size]
            trainer.global_update(
                [tasks.x(u, s) for u, s, _ in batch],
                [tasks.y(s) for _, s, _ in batch],
                [tasks.x(u, q) for u, _, q in batch],
                [tasks.y(q) for _, _, q in batch],
            )
            trained += len(batch)
        train_seconds += time.perf_counter() - began
        valid_mae, valid_rmse = evaluate(trainer, tasks, rows["VALID_SUPPORT"], rows["VALID_QUERY"])
        test_mae, test_rmse = evaluate(trainer, tasks, rows["TEST_SUPPORT"], rows["TEST_QUERY"])
        curve.append({"valid_mae": valid_mae, "valid_rmse": valid_rmse,
                      "test_mae": test_mae, "test_rmse": test_rmse})  # fmt: skip
    return {
        "seed": seed,
        "config": {key: config[key] for key in CONFIG_KEYS},
        "epochs": epochs,
        "output_bias_start": bias_start,
        "one_hot_dims": {"items": if_dim, "users": uf_dim},
        "tasks": {role: len(users) for role, users in rows.items()},
        "training_tasks": len(training),
        "meta_train_users_left_out": left_out,
        "test_query_rows_of_untrained_items": unseen,
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
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=None, help="default: their num_epoch")
    parser.add_argument("--start_at_mean", action="store_true", help="see the module doc")
    parser.add_argument("--result_file", required=True)
    options = parser.parse_args(argv)
    authors_code = check_authors_code(options.authors_code)
    result = run_official(
        authors_code, options.data_dir, options.seed, options.epochs, options.start_at_mean
    )
    write_json(options.result_file, result)


if __name__ == "__main__":
    main()
