"""MAMO's own code (dongmanqing/Code-for-MAMO) on an exported user cold-start split, in one
process.

Usage (started by :mod:`recbole_coldmeta.benchmarks.parity.mamo`, one process per run)::

    python -m recbole_coldmeta.benchmarks.parity.mamo_official --authors_code=PATH
        --data_dir=EXPORT --raw_dir=DATASET_FOLDER --seed=2020 --result_file=RESULT.json
        [--epochs 3] [--users_per_epoch 100]

Their classes are imported from ``--authors_code`` (a local checkout; its folder goes on
``sys.path`` in this process only) and run unchanged: ``MLUserLoading`` / ``MLItemLoading``
(``modules/input_loading.py``), ``UserEmbedding`` / ``ItemEmbedding``, ``RecMAM`` (the
memory-specific layer and the 5-level classifier), ``BASEModel`` and ``LOCALUpdate`` (their local
Adam on support mini-batches, the first-order query gradient), ``FeatureMem`` / ``TaskMem`` (the
feature- and task-specific memories), ``maml_train`` / ``grads_sum`` (their global SGD step on
the summed gradients), with their hyper-parameters (``configs.config_settings``: embedding 100,
K = 3, alpha, beta, gamma, rho, lambda, tau, support mini-batches of 5, 3 inner passes, 3 epochs)
and their sizes (``utils.config``, ``default_info['movielens']``). No line of theirs is changed
for torch 2.13.

NOTE: what is ours, each a decision:

- **their input, from our split**: ``LOCALUpdate`` reads a user's rows with ``load_user_info``
  from their per-user pickles; here the name ``load_user_info`` of their ``models`` module is
  bound, in this process, to :class:`.mamo_input.SplitRows` (the same eight tensors, built from
  the export of :mod:`.melu_export`, the features encoded as their ML-1M loader encodes them:
  :mod:`.mamo_input` says how ml-100k's map);
- **the users, from our split**: a validation or test user's support rows are their support set
  and its query rows their query set. A meta-training user is cut once, seeded, by the rule of
  the TaNP harness (:func:`.tanp_official.meta_train_cut`: shuffled, the first ``support_size``
  = 15 rows the support, the rest the query; users with at most 15 rows left out, counted). The
  training users are shuffled once (their ``train_test_user_list``); every epoch their loop
  takes the first ``users_per_epoch`` of them (their ``train_users[:100]``; 0: all) and makes
  one global update;
- **their loop** (``MAMRec.train_with_meta_optimization``) is driven here one epoch at a time,
  its parts built in their ``__init__``'s order: their ``MAMRec`` builds its model and then
  trains at once on their files. ``user_mem_init`` is their two calls without the pickle read
  (the user loading of the user's row, ``FeatureMem.read_head``). After each user's writes the
  memories are detached from autograd (values unchanged: no backward ever runs through them; kept,
  their graphs grow with every user, about 0.7 MB each). CPU (their ``cuda:5`` is not used).
  Seeding: ``random``, numpy and torch (their code seeds nothing);
- **evaluation**: their ``test()`` computes nothing ("D.I.Y your calculation"); their
  ``utils.mae`` scores the class of the largest probability, so a rating is ``argmax + 1`` (the
  expected rating under their softmax is kept beside it, ``*_mae_expected``). After each epoch
  every validation and test user is scored twice: as their ``test_with_meta_optimization``
  (from the model's current weights: the last training user's adapted ones, their ``φ`` reaches
  the model only when the next user starts; the memories read and then overwritten by
  ``init_weights``; ``LOCALUpdate.test``: their local Adam on the support rows), and as their
  training adapts a user (``φ`` personalised by both memories, then the same local update:
  ``curve_memories``). Each user starts from the state the epoch left, restored afterwards
  (weights, biases, the loadings their local Adam also moves, the memories) and inside
  ``torch.random.fork_rng`` (their ``FeatureMem`` draws a new attention layer at every read):
  evaluation changes neither their training nor the next user (their test loop lets each
  test user's updates run on into the next user and the next epoch). The test MAE / RMSE of
  the epoch with the lowest validation MAE is reported, and the last epoch.

The result file (JSON): both curves (``valid_mae, valid_rmse, test_mae, test_rmse`` and the
expected-rating MAEs per epoch), each one's selected and last epoch, their configuration, task
and row counts, tasks per second of training, seconds.
"""

import argparse
import contextlib
import importlib
import os
import random
import sys
import time
import types

import numpy as np

from recbole_coldmeta.benchmarks.parity.jobs import check_checkout, select_on_validation, write_json
from recbole_coldmeta.benchmarks.parity.mamo_input import (
    SplitRows,
    encode_items,
    encode_users,
    read_atomic,
)
from recbole_coldmeta.benchmarks.parity.melu_export import read_tasks
from recbole_coldmeta.benchmarks.parity.tanp_official import meta_train_cut

#: Files of their checkout this harness imports or reads.
REQUIRED_FILES = (
    "mamoRec.py", "models.py", "utils.py", "configs.py", "modules/input_loading.py",
    "modules/info_embedding.py", "modules/rec_model.py", "modules/memories.py",
    "prepare_data/prepareList.py", "data_raw/ml-1m/List_genre.txt",
    "data_raw/ml-1m/List_director.txt",
)  # fmt: skip
#: Their modules, imported from the checkout (``modules/`` has no ``__init__``).
THEIR_MODULES = {
    "configs": "configs", "utils": "utils", "models": "models",
    "input_loading": "modules.input_loading", "info_embedding": "modules.info_embedding",
    "rec_model": "modules.rec_model", "memories": "modules.memories",
    "lists": "prepare_data.prepareList",
}  # fmt: skip
#: Their dataset name (``default_info``' key; ``LOCALUpdate`` passes it on).
DATASET = "movielens"
#: Their ``LOCALUpdate``'s ``top_k`` (unused by it; their loop passes 3).
TOP_K = 3
#: Training users a meta-epoch of their loop takes (``for u in self.train_users[:100]``).
THEIR_USERS_PER_EPOCH = 100


def check_authors_code(path):
    """The checkout folder ``path``, made absolute; ``ValueError`` when it is not one."""
    return check_checkout(
        path, "dongmanqing/Code-for-MAMO", REQUIRED_FILES, "mamoRec.py, modules/ and data_raw/"
    )


def import_authors(authors_code):
    """Their modules (:data:`THEIR_MODULES`) as one namespace. ``prepareList`` reads its ML-1M
    lists relative to the working directory at import, so it is imported from the checkout."""
    sys.path.insert(0, authors_code)
    folder = os.getcwd()
    os.chdir(authors_code)
    try:
        return types.SimpleNamespace(
            **{key: importlib.import_module(name) for key, name in THEIR_MODULES.items()}
        )
    finally:
        os.chdir(folder)


class TheirMAMO:
    """Their ``MAMRec``'s parts, built in its ``__init__``'s order (``settings``: their
    ``config_settings``), and its training and test steps, one user at a time."""

    def __init__(self, their, rows, settings):
        import torch

        self.their, self.rows, self.s = their, rows, settings
        self.device = torch.device("cpu")
        info, size = their.utils.default_info[DATASET], settings["embedding_dim"]
        n_layer, activation = settings["n_layer"], settings["active_func"]
        self.x1_loading = their.input_loading.MLUserLoading(embedding_dim=size)
        x2_loading = their.input_loading.MLItemLoading(embedding_dim=size)
        user_embedding = their.info_embedding.UserEmbedding(
            n_layer, info["u_in_dim"] * size, size, activation=activation
        )
        item_embedding = their.info_embedding.ItemEmbedding(
            n_layer, info["i_in_dim"] * size, size, activation=activation
        )
        rec = their.rec_model.RecMAM(size, info["n_y"], n_layer, activation=activation)
        self.model = their.models.BASEModel(
            self.x1_loading, x2_loading, user_embedding, item_embedding, rec
        )
        self.phi = self.model.get_weights()
        self.feature_mem = their.memories.FeatureMem(
            settings["n_k"], info["u_in_dim"] * size, self.model, device=self.device
        )
        self.task_mem = their.memories.TaskMem(settings["n_k"], size, device=self.device)

    def local_update(self, key):
        """Their ``LOCALUpdate`` of task ``key`` (its rows set in ``rows.tasks``)."""
        _, support, query = self.rows.tasks[key]
        return self.their.models.LOCALUpdate(
            self.model, key, DATASET, len(support), len(query), self.s["batch_size"],
            self.s["n_inner_loop"], self.s["rho"], top_k=TOP_K, device=self.device,
        )  # fmt: skip

    def read_memories(self, key):
        """Their ``user_mem_init``: the personalised bias and the attention of the user of
        ``key``."""
        x1 = self.rows.x1(self.rows.tasks[key][0], 1)
        return self.feature_mem.read_head(self.x1_loading(x1), self.s["alpha"])

    def start(self, key, phi):
        """Their two memory initialisations of the model for the user of ``key``, from ``phi``."""
        bias, attention = self.read_memories(key)
        self.model.init_u_mem_weights(phi[0], bias, self.s["tao"], phi[1], phi[2])
        self.model.init_ui_mem_weights(attention, self.task_mem)

    def detach_memories(self):
        """The memories without their autograd history (values unchanged; see the NOTE)."""
        memory = self.feature_mem
        memory.p_memory = memory.p_memory.detach()
        memory.att_values = memory.att_values.detach()
        memory.u_memory = [[value.detach() for value in slot] for slot in memory.u_memory]
        self.task_mem.memory_UI = self.task_mem.memory_UI.detach()

    def train_epoch(self, keys):
        """Their ``train_with_meta_optimization``'s epoch over the tasks ``keys``."""
        models = self.their.models
        sums = self.model.get_zero_weights()
        for key in keys:
            self.start(key, self.phi)
            grads = self.local_update(key).train()
            sums = [self.their.utils.grads_sum(total, new) for total, new in zip(sums, grads)]
            self.feature_mem.write_head(grads[0], self.s["beta"])
            self.task_mem.write_head(self.model.get_ui_mem_weights()[0], self.s["gamma"])
            self.detach_memories()
        self.phi = models.maml_train(*self.phi, *sums, self.s["lamda"])

    @contextlib.contextmanager
    def kept(self):
        """The model's and memories' state, restored on exit (see the NOTE)."""
        state = {name: value.clone() for name, value in self.model.state_dict().items()}
        memory, task = self.feature_mem, self.task_mem
        kept = (memory.p_memory, memory.att_values, memory.u_memory, task.memory_UI,
                task.att_values)  # fmt: skip
        try:
            yield
        finally:
            self.model.load_state_dict(state)
            (memory.p_memory, memory.att_values, memory.u_memory, task.memory_UI,
             task.att_values) = kept  # fmt: skip

    def class_probabilities(self, key, memories):
        """``[Q, 5]`` their softmax on the query rows of ``key`` after their local update on its
        support rows, started as their test does (``memories`` False) or as their training
        does (True)."""
        import torch

        with self.kept():
            current = self.model.get_weights()
            self.start(key, self.phi if memories else current)
            if not memories:
                self.model.init_weights(*current)
            local = self.local_update(key)
            local.test()
            with torch.no_grad():
                return self.model(local.q_x1, local.q_x2)


def evaluate(mamo, support, query, role, memories):
    """MAE and RMSE of ``argmax + 1`` and MAE of the expected rating over every query row of the
    users in ``query`` (``role``: the key prefix), each adapted on its ``support`` rows."""
    import torch

    errors, expected = [], []
    with torch.random.fork_rng():
        for user in sorted(query):
            key = (role, user)
            mamo.rows.tasks[key] = (user, support[user], query[user])
            probabilities = mamo.class_probabilities(key, memories)
            ratings = torch.tensor([rating for _, rating in query[user]], dtype=torch.float)
            errors.append(probabilities.argmax(dim=1).float() + 1 - ratings)
            levels = torch.arange(1, probabilities.shape[1] + 1, dtype=torch.float)
            expected.append(probabilities @ levels - ratings)
    errors, expected = torch.cat(errors), torch.cat(expected)
    mae, rmse = float(errors.abs().mean()), float(errors.pow(2).mean().sqrt())
    return mae, rmse, float(expected.abs().mean())


def evaluate_epoch(mamo, rows, memories):
    """One point of a curve: the validation and test users' errors."""
    point = {}
    for name, role in (("valid", "VALID"), ("test", "TEST")):
        mae, rmse, mae_expected = evaluate(
            mamo, rows[f"{role}_SUPPORT"], rows[f"{role}_QUERY"], role, memories
        )
        point.update({f"{name}_mae": mae, f"{name}_rmse": rmse})
        point[f"{name}_mae_expected"] = mae_expected
    return point


def run_official(authors_code, data_dir, raw_dir, seed, epochs=None, users_per_epoch=None):
    """Train their MAMO on the export in ``data_dir`` (features from ``raw_dir``'s atomic files);
    the result dict (see the module doc)."""
    import torch

    their = import_authors(authors_code)
    settings = dict(their.configs.config_settings)
    epochs = settings["n_epoch"] if epochs is None else epochs
    rows = read_tasks(data_dir)
    name = os.path.basename(os.path.normpath(raw_dir))
    users = encode_users(read_atomic(os.path.join(raw_dir, f"{name}.user")), their)
    items = encode_items(read_atomic(os.path.join(raw_dir, f"{name}.item")), their)
    split_rows = SplitRows(users, items)
    their.models.load_user_info = split_rows  # their LOCALUpdate reads a user's rows by this name
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    mamo = TheirMAMO(their, split_rows, settings)
    size = settings["support_size"]
    training, left_out = meta_train_cut(rows["META_TRAIN"], size, size, seed)
    keys = []
    for user, support, query in training:
        split_rows.tasks[("META_TRAIN", user)] = (user, support, query)
        keys.append(("META_TRAIN", user))
    random.shuffle(keys)  # their train_test_user_list: shuffled once
    if users_per_epoch is None:
        users_per_epoch = THEIR_USERS_PER_EPOCH
    per_epoch = keys[: users_per_epoch or None]
    curve, curve_memories, train_seconds = [], [], 0.0
    start = time.perf_counter()
    for _ in range(epochs):
        began = time.perf_counter()
        mamo.train_epoch(per_epoch)
        train_seconds += time.perf_counter() - began
        curve.append(evaluate_epoch(mamo, rows, memories=False))
        curve_memories.append(evaluate_epoch(mamo, rows, memories=True))
    return {
        "seed": seed,
        "config": settings,
        "epochs": epochs,
        "users_per_epoch": len(per_epoch),
        "tasks": {role: len(of_role) for role, of_role in rows.items()},
        "training_tasks": len(training),
        "meta_train_users_left_out": left_out,
        "curve": curve,
        "selected": select_on_validation(curve),
        "last": {"epoch": len(curve), **curve[-1]},
        "curve_memories": curve_memories,
        "selected_memories": select_on_validation(curve_memories),
        "last_memories": {"epoch": len(curve_memories), **curve_memories[-1]},
        "tasks_per_second": round(epochs * len(per_epoch) / max(train_seconds, 1e-9), 1),
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--authors_code", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--raw_dir", required=True, help="the dataset folder (.user, .item)")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=None, help="default: their n_epoch")
    parser.add_argument("--users_per_epoch", type=int, default=None, help="0: all (theirs: 100)")
    parser.add_argument("--result_file", required=True)
    options = parser.parse_args(argv)
    authors_code = check_authors_code(options.authors_code)
    result = run_official(
        authors_code, options.data_dir, options.raw_dir, options.seed, options.epochs,
        options.users_per_epoch,
    )  # fmt: skip
    write_json(options.result_file, result)


if __name__ == "__main__":
    main()
