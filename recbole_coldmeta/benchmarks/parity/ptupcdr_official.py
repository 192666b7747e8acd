"""PTUPCDR's and EMCDR's own code (easezyc/WSDM2022-PTUPCDR) on an exported split, in one process.

Usage (started by :mod:`recbole_coldmeta.benchmarks.parity.ptupcdr`, one process per seed and
initialisation)::

    python -m recbole_coldmeta.benchmarks.parity.ptupcdr_official --authors_code=PATH
        --data_dir=EXPORT --seed=2020 [--init_std=0.1] --result_file=RESULT.json

Their ``run.py`` and ``models.py`` are imported from ``--authors_code`` (a local checkout; its
folder goes on ``sys.path`` in this process only) and run unchanged, but for:

- **the smallest adaptation**: ``run.py`` imports TensorFlow only for
  ``keras.preprocessing.sequence.pad_sequences(maxlen=20, padding='post')``; a stub module named
  ``tensorflow`` (in ``sys.modules`` while their ``run.py`` is imported, in this process) provides
  :func:`pad_sequences`, a numpy function with Keras's semantics (tested against hand-padded
  rows). No line of their code is changed or copied;
- **their configuration**: their ``config.json`` with task ``2`` (Books -> Movies_and_TV, its
  batch sizes), the user and item counts of our export, ``batchsize_meta`` 128 instead of 512
  (ours: ``properties/model/PTUPCDR.yaml`` trains the bridge at 128; the source/target batch size
  512, ``emb_dim`` 10, ``meta_dim`` 50, ``lr`` 0.01 and no weight decay are the same in both),
  ``entry.py``'s defaults ``epoch`` 10, ``base_model`` MF and its seeding (``random``, numpy and
  torch from ``--seed``), CPU (``--their_batch_sizes`` keeps their ``batchsize_meta`` 512);
- **the initialisation**, by ``--init_std``: without it their PyTorch default, N(0, 1) for every
  ``nn.Embedding``; with it every embedding is redrawn from N(0, init_std) after their model is
  built (ours: ``init_std`` 0.1, ``properties/protocol/cross_domain.yaml``); their linear layers
  keep PyTorch's default, as ours do;
- **model selection**: their ``Run.main`` (target MF, data augmentation, source MF, EMCDR, then
  PTUPCDR, ``epoch`` epochs each, as they schedule it) evaluates the test users after every epoch
  of each stage and reports the best test epoch. Here each of those evaluations also evaluates
  the validation users (``valid.csv``, their own ``eval_mae``, the torch RNG state restored
  afterwards so that training draws exactly the batches it would draw without it); the result
  is the test MAE / RMSE of the epoch with the lowest validation MAE (the first such epoch), with
  their own best-test-epoch numbers kept beside it.

The result file (JSON): per stage (``TGT``, ``DataAug``, ``EMCDR``, ``PTUPCDR``) the curve of
``valid_mae, valid_rmse, test_mae, test_rmse`` per epoch, the selected epoch and its test
metrics, their ``results`` dict, and the seconds it took.
"""

import argparse
import importlib
import json
import os
import random
import sys
import time
import types

import numpy as np

from recbole_coldmeta.benchmarks.parity.jobs import check_checkout, select_on_validation, write_json

#: Files of their checkout this harness imports or reads.
REQUIRED_FILES = ("run.py", "models.py", "config.json")
#: Their task "2" is Books -> Movies_and_TV (config.json); its batch sizes are kept.
TASK = "2"
#: Their ``eval_mae`` stage names and the models they evaluate.
STAGES = {"test_tgt": "TGT", "test_aug": "DataAug", "test_map": "EMCDR", "test_meta": "PTUPCDR"}
#: Where our configuration differs from theirs (properties/model/PTUPCDR.yaml).
OUR_BATCH_SIZES = {"batchsize_meta": 128}
#: entry.py's defaults.
ENTRY_DEFAULTS = {"epoch": 10, "lr": 0.01, "base_model": "MF", "ratio": [0.8, 0.2]}


def check_authors_code(path):
    """The checkout folder ``path``, made absolute; ``ValueError`` when it is not one.

    A valid checkout holds :data:`REQUIRED_FILES` (easezyc/WSDM2022-PTUPCDR at its top level).
    """
    return check_checkout(
        path, "easezyc/WSDM2022-PTUPCDR", REQUIRED_FILES, "run.py, models.py, config.json"
    )


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0):
    """``keras.preprocessing.sequence.pad_sequences`` for sequences of integers, in numpy.

    Each sequence is cut to its last (``truncating='pre'``) or first (``'post'``) ``maxlen``
    values and padded with ``value`` before (``padding='pre'``) or after (``'post'``) them;
    ``maxlen=None`` is the longest sequence's length. Returns ``[len(sequences), maxlen]``.
    """
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError(f"padding={padding!r} / truncating={truncating!r}: 'pre' or 'post'.")
    sequences = [list(sequence) for sequence in sequences]
    if maxlen is None:
        maxlen = max((len(sequence) for sequence in sequences), default=0)
    padded = np.full((len(sequences), maxlen), value, dtype=dtype)
    for row, sequence in enumerate(sequences):
        kept = sequence[len(sequence) - maxlen :] if truncating == "pre" else sequence[:maxlen]
        if not kept or maxlen == 0:
            continue
        if padding == "post":
            padded[row, : len(kept)] = kept
        else:
            padded[row, maxlen - len(kept) :] = kept
    return padded


def tensorflow_stub():
    """A module named ``tensorflow`` whose ``keras.preprocessing.sequence.pad_sequences`` is
    :func:`pad_sequences`: all that their ``run.py`` uses of TensorFlow."""
    stub = types.ModuleType("tensorflow")
    sequence = types.SimpleNamespace(pad_sequences=pad_sequences)
    stub.keras = types.SimpleNamespace(preprocessing=types.SimpleNamespace(sequence=sequence))
    return stub


def import_authors_run(authors_code):
    """Their ``run`` module, imported from the checkout with the TensorFlow stub in place.

    The stub is in ``sys.modules`` only while ``run.py`` is imported (it binds ``keras`` at import
    time): torch probes for an installed TensorFlow later on and must not find the stub.
    """
    sys.modules["tensorflow"] = tensorflow_stub()
    sys.path.insert(0, authors_code)
    try:
        return importlib.import_module("run")
    finally:
        del sys.modules["tensorflow"]


def authors_config(authors_code, split, batch_sizes=OUR_BATCH_SIZES):
    """Their ``config.json`` for our export (see the module doc for every value changed);
    ``batch_sizes`` replace theirs (``{}``: their own)."""
    with open(os.path.join(authors_code, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    config.update(ENTRY_DEFAULTS, use_cuda=0, task=TASK)
    pair = config["src_tgt_pairs"][TASK]
    pair.update(batch_sizes, uid=split["uid_all"], iid=split["iid_all"])
    return config


def validated_run_class(run_class):
    """Their ``Run`` with validation users evaluated beside every test evaluation."""
    import torch

    class ValidatedRun(run_class):
        def __init__(self, config, data_dir, init_std):
            super().__init__(config)
            self.src_path = os.path.join(data_dir, "train_src.csv")
            self.tgt_path = os.path.join(data_dir, "train_tgt.csv")
            self.meta_path = os.path.join(data_dir, "train_meta.csv")
            self.test_path = os.path.join(data_dir, "test.csv")
            self.valid_path = os.path.join(data_dir, "valid.csv")
            self.init_std = init_std
            self.curves = {}

        def get_model(self):
            model = super().get_model()
            if self.init_std is not None:
                for module in model.modules():
                    if isinstance(module, torch.nn.Embedding):
                        torch.nn.init.normal_(module.weight, std=self.init_std)
            return model

        def get_data(self):
            loaders = super().get_data()
            self.data_valid = self.read_log_data(self.valid_path, self.batchsize_test, history=True)
            return loaders

        def eval_mae(self, model, data_loader, stage):
            test_mae, test_rmse = super().eval_mae(model, data_loader, stage)
            rng_state = torch.get_rng_state()  # their shuffled loaders draw from it
            valid_mae, valid_rmse = super().eval_mae(model, self.data_valid, stage)
            torch.set_rng_state(rng_state)
            self.curves.setdefault(STAGES[stage], []).append(
                {"valid_mae": valid_mae, "valid_rmse": valid_rmse,
                 "test_mae": test_mae, "test_rmse": test_rmse}
            )  # fmt: skip
            return test_mae, test_rmse

    return ValidatedRun


def run_official(authors_code, data_dir, seed, init_std=None, batch_sizes=OUR_BATCH_SIZES):
    """Train their models on the export in ``data_dir``; the result dict (see the module doc)."""
    import torch

    with open(os.path.join(data_dir, "split.json"), encoding="utf-8") as f:
        split = json.load(f)
    run_class = validated_run_class(import_authors_run(authors_code).Run)
    config = authors_config(authors_code, split, batch_sizes)
    random.seed(seed)  # as entry.py seeds
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed(seed)
    start = time.perf_counter()
    run = run_class(config, data_dir, init_std)
    run.main()
    return {
        "seed": seed,
        "init_std": init_std,
        "config": {key: config[key] for key in ("epoch", "lr", "emb_dim", "meta_dim", "wd")},
        "batch_sizes": {k: v for k, v in config["src_tgt_pairs"][TASK].items() if "batch" in k},
        "stages": {
            name: {"curve": curve, "selected": select_on_validation(curve)}
            for name, curve in run.curves.items()
        },
        "their_results": run.results,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--authors_code", required=True)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--init_std", type=float, default=None)
    parser.add_argument("--result_file", required=True)
    parser.add_argument(
        "--their_batch_sizes", action="store_true", help="keep config.json's batchsize_meta (512)"
    )
    options = parser.parse_args(argv)
    batch_sizes = {} if options.their_batch_sizes else OUR_BATCH_SIZES
    authors_code = check_authors_code(options.authors_code)
    result = run_official(
        authors_code, options.data_dir, options.seed, options.init_std, batch_sizes
    )
    write_json(options.result_file, result)


if __name__ == "__main__":
    main()
