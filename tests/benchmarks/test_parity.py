"""The PTUPCDR parity harness without the authors' code: the export is our split, row for row,
in their format; the TensorFlow stub pads as Keras does; validation never moves their training;
a run without a result is named, with its error, in the report."""

import csv
import json
import logging
import sys

import numpy as np
import pytest
import torch

from recbole_coldmeta.benchmarks.parity import jobs, ptupcdr, ptupcdr_official
from recbole_coldmeta.benchmarks.parity.cdr_export import export_ptupcdr_split
from recbole_coldmeta.benchmarks.parity.report import parity_table
from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.utils.enums import Phase


def export(config_dict, folder):
    config = build_config("PTUPCDR", None, config_dict=config_dict)
    train, valid, test = data_preparation(config, create_dataset(config))
    parts = (train.dataset, valid.dataset, test.dataset)
    return parts, export_ptupcdr_split(config, *parts, folder)


def read(folder, name):
    with open(folder / name, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    return [
        (int(row[0]), int(row[1]), int(row[2]), *([json.loads(row[3])] if len(row) > 3 else []))
        for row in rows
    ]


@pytest.fixture
def exported(cdr_config, tmp_path):
    parts, summary = export(cdr_config, tmp_path / "export")
    return parts, summary, tmp_path / "export"


def test_every_file_holds_exactly_its_part_of_our_split(exported):
    (train, valid, test), summary, folder = exported
    source = train.source
    offset = source.item_num
    expected = {
        "train_src.csv": source.inter_feat,
        "train_tgt.csv": train.inter_feat,
        "train_meta.csv": train.phase_data[Phase.BRIDGE][0].inter_feat,
        "valid.csv": valid.inter_feat,
        "test.csv": test.inter_feat,
    }
    for name, inter in expected.items():
        rows = read(folder, name)
        assert len(rows) == len(inter) == summary["rows"][name] > 0
        if name == "train_src.csv":
            continue
        ours = list(zip(inter["user_id"].tolist(), inter["item_id"].tolist()))
        assert [(uid, iid - offset) for uid, iid, *_ in rows] == ours
        assert [y for _, _, y, *_ in rows] == inter["rating"].long().tolist()
    split = train.split_info
    assert summary["rows"]["train_tgt.csv"] == split["train_interactions"]
    assert summary["rows"]["train_meta.csv"] == split["bridge_interactions"]
    assert (summary["valid_users"], summary["test_users"]) == (
        split["valid_users"],
        split["test_users"],
    )


def test_no_valid_or_test_user_target_row_is_in_a_training_file(exported):
    _, _, folder = exported
    held_out = {row[0] for name in ("valid.csv", "test.csv") for row in read(folder, name)}
    assert held_out
    for name in ("train_tgt.csv", "train_meta.csv"):
        assert not held_out & {row[0] for row in read(folder, name)}


def test_ids_are_one_user_space_and_disjoint_item_ranges(exported):
    (train, _, _), summary, folder = exported
    source_rows = read(folder, "train_src.csv")
    source_items = {iid for _, iid, _ in source_rows}
    target_files = ("train_tgt.csv", "train_meta.csv", "valid.csv", "test.csv")
    target_items = {row[1] for name in target_files for row in read(folder, name)}
    assert not source_items & target_items
    assert max(source_items) < min(target_items)
    assert 0 not in source_items | target_items  # id 0 is their attention's padding
    assert max(target_items) < summary["iid_all"]
    # an overlap user is one uid in both domains: its source rows hold its history items
    items_of = {}
    for uid, iid, _ in source_rows:
        items_of.setdefault(uid, set()).add(iid)
    for uid, _, _, history in read(folder, "test.csv"):
        assert uid in items_of and set(history) <= items_of[uid]
    assert max(uid for uid, _, _ in source_rows) < summary["uid_all"]


@pytest.mark.parametrize("max_len", [20, 3])
def test_each_history_is_the_models_rule(cdr_config, tmp_path, max_len):
    (train, _, _), _ = export({**cdr_config, "history_max_len": max_len}, tmp_path)
    inter = train.source.inter_feat
    for name in ("train_meta.csv", "valid.csv", "test.csv"):
        for uid, _, _, history in read(tmp_path, name):
            user = int(train.source_user_of[uid])
            rows = torch.nonzero((inter["user_id"] == user) & (inter["rating"] > 3)).squeeze(1)
            assert history == inter["item_id"][rows][-max_len:].tolist()


def test_pad_sequences_pads_and_truncates_as_keras():
    sequences = [[1, 2, 3], [4], []]
    pad = ptupcdr_official.pad_sequences
    post = pad(sequences, maxlen=2, padding="post")
    assert post.tolist() == [[2, 3], [4, 0], [0, 0]] and post.dtype == np.int32
    assert pad(sequences, maxlen=2).tolist() == [[2, 3], [0, 4], [0, 0]]
    assert pad(sequences, maxlen=2, truncating="post").tolist() == [[1, 2], [0, 4], [0, 0]]
    assert pad(sequences, padding="post").tolist() == [[1, 2, 3], [4, 0, 0], [0, 0, 0]]
    stub = ptupcdr_official.tensorflow_stub()
    assert stub.keras.preprocessing.sequence.pad_sequences is pad


class FakeRun:
    """What the harness uses of their ``Run``: ``eval_mae`` draws from torch's RNG (their loaders
    shuffle) and returns the same error for any loader."""

    def __init__(self, config):
        self.batchsize_test = 4
        self.errors = iter([0.9, 0.9, 0.5, 0.5, 0.7, 0.7])

    def get_data(self):
        return ()

    def read_log_data(self, path, batchsize, history=False):
        return path

    def eval_mae(self, model, data_loader, stage):
        torch.rand(1)
        error = next(self.errors)
        return error, error + (data_loader == "valid") * 0.01


def test_validation_is_recorded_without_moving_their_random_stream(tmp_path):
    run = ptupcdr_official.validated_run_class(FakeRun)({}, str(tmp_path), None)
    run.valid_path = "valid"
    run.get_data()
    torch.manual_seed(0)
    reference = FakeRun({})
    expected = []
    for _ in range(3):
        expected.append(reference.eval_mae(None, "test", "test_meta"))
        next(reference.errors)  # the validation call of the harness
    state_after_test_evaluations = torch.get_rng_state()
    torch.manual_seed(0)
    got = [run.eval_mae(None, "test", "test_meta") for _ in range(3)]
    assert got == expected
    assert torch.equal(torch.get_rng_state(), state_after_test_evaluations)
    curve = run.curves["PTUPCDR"]
    assert [point["valid_rmse"] for point in curve] == pytest.approx([0.91, 0.51, 0.71])
    assert ptupcdr_official.select_on_validation(curve)["epoch"] == 2


def test_their_config_takes_our_counts_and_bridge_batch_size(tmp_path):
    pair = {"batchsize_src": 512, "batchsize_meta": 512, "uid": 1, "iid": 1}
    (tmp_path / "config.json").write_text(json.dumps({"src_tgt_pairs": {"2": pair}, "wd": 0}))
    config = ptupcdr_official.authors_config(str(tmp_path), {"uid_all": 30, "iid_all": 40})
    used = config["src_tgt_pairs"]["2"]
    assert (used["uid"], used["iid"], used["batchsize_meta"], used["batchsize_src"]) == (
        30, 40, 128, 512,
    )  # fmt: skip
    assert (config["epoch"], config["lr"], config["use_cuda"], config["task"]) == (10, 0.01, 0, "2")


@pytest.mark.parametrize("files", [None, ["run.py"]])
def test_a_missing_or_wrong_authors_code_is_one_error_line(tmp_path, capsys, files):
    path = tmp_path / "checkout"
    if files is not None:
        path.mkdir()
        for name in files:
            (path / name).write_text("")
    assert ptupcdr.main([f"--authors_code={path}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --authors_code=") and err.count("\n") == 1


def test_table_reports_mean_std_and_every_seed():
    rows = [
        ("a", {1: {"mae": 0.7, "rmse": 1.0, "best_test_mae": 0.6}, 2: {"mae": 0.9, "rmse": 1.2}}),
        ("b", {2: {"mae": 0.8, "rmse": 1.1}}),
    ]
    table = parity_table(rows, [1, 2])
    assert "| a | 0.8000 ± 0.1414 | 1.1000 ± 0.1414 | 0.7000 | 0.9000 | 0.6000 ± 0.0000 |" in table
    assert "| b | 0.8000 ± 0.0000 | 1.1000 ± 0.0000 | — | 0.8000 | — |" in table


def test_a_run_without_a_result_is_named_with_its_error_in_the_report(tmp_path, capsys):
    crash = [sys.executable, "-c", "raise ValueError('Training loss is nan')"]
    fine = [sys.executable, "-c", f"open({str(tmp_path / 'ok.json')!r}, 'w').write('{{}}')"]
    pending = [
        ("diverges", 2020, crash, str(tmp_path / "diverges.json")),
        ("fine", 2020, fine, str(tmp_path / "ok.json")),
    ]
    failed = jobs.run_pending(pending, 2, logging.getLogger("test"))
    assert failed == [
        f"diverges seed 2020: ValueError: Training loss is nan (see {tmp_path / 'diverges.log'})"
    ]
    assert jobs.finish(str(tmp_path / "report.md"), "| table |\n", failed) == 1
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "Runs without a result (their rows show —): diverges seed 2020: ValueError" in report
    assert jobs.finish(str(tmp_path / "clean.md"), "| table |\n", []) == 0
    assert (tmp_path / "clean.md").read_text(encoding="utf-8") == "| table |\n"
