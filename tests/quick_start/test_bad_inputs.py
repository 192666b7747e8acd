"""The catalogue of bad inputs: each stops ``run_recbole_coldmeta.py`` or ``run_hyper_coldmeta.py``
(their ``main``, in-process) with exit code 2, exactly one ``error:`` line on stderr and no
traceback; every input that can be told bad before the data loads is (nothing loads, nothing
trains), and a bad data file before any training.

Classes (:data:`CLASSES`): config values (wrong type, out of range, not one of the choices,
metrics, booleans, keys), config files, outputs (result file, checkpoint_dir, tuning and benchmark
outputs), resume (single and phased runs), tuning params files, data files (malformed, missing
values, off the scale).

Paths are made uncreatable by putting them under a regular file (``blocker/r.json`` with
``blocker`` a file), which fails for root too, where permission bits would not.
"""

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from recbole.trainer import Trainer

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.quick_start import build_config, quick_start
from recbole_coldmeta.quick_start.cli import main
from recbole_coldmeta.quick_start.hyper import objective
from recbole_coldmeta.quick_start.hyper.cli import main as hyper_main
from recbole_coldmeta.registry import get_model, get_trainer
from recbole_coldmeta.trainer import ColdMetaTrainerMixin

CLASSES = ("config", "config file", "output", "resume", "params file", "data")


@dataclass(frozen=True)
class Case:
    """One bad input: ``run(paths)`` returns the exit code; the error line holds every string of
    ``expected``; ``up_front``: it is reported before the data loads."""

    id: str
    kind: str
    run: object
    expected: tuple
    up_front: bool = True


def _tiny(p, *args, model="MeLU"):
    return main([f"--model={model}", "--dataset=tiny", f"--data_path={p['data']}", *args])


def _config(case_id, args, key):
    return Case(
        case_id, "config", lambda p: main([*args, "--dataset=tiny", f"--data_path={p['data']}"]),
        (key,),
    )  # fmt: skip


def _resume(case_id, run, expected):
    return Case(case_id, "resume", run, (expected,))


def _output(case_id, run, expected):
    return Case(case_id, "output", run, (expected,))


def _hyper(p, *args):
    return hyper_main(["--model=MeLU", "--dataset=tiny", f"--data_path={p['data']}", *args])


def _params(case_id, text, expected, *args):
    def run(p):
        Path("bad.hyper").write_text(text)
        return _hyper(p, "--params_file=bad.hyper", *args)

    return Case(case_id, "params file", run, ("bad.hyper, line ", expected))


def _cdr(p, model, *args):
    return main([f"--model={model}", f"--config_files={p['cdr']}", *args])


CASES = [
    # config: wrong type
    _config("epochs-not-an-integer", ["--model=MeLU", "--epochs=abc"], "epochs"),
    _config("epochs-a-float", ["--model=MeLU", "--epochs=2.5"], "epochs"),
    _config("seed-not-an-integer", ["--model=BPR", "--seed=abc"], "seed"),
    _config("learning-rate-not-a-number", ["--model=MeLU", "--learning_rate=abc"], "learning_rate"),
    _config("hidden-sizes-a-tuple", ["--model=MeLU", "--mlp_hidden_size=64,64"], "mlp_hidden_size"),
    _config("also-test-states-a-string", ["--model=MeLU", "--also_test_states=b"],
            "also_test_states"),
    _config("source-domain-a-string", ["--model=PTUPCDR", "--source_domain=books"],
            "source_domain"),
    # config: out of range
    _config("learning-rate-negative", ["--model=MeLU", "--learning_rate=-1"], "learning_rate"),
    _config("task-batch-size-zero", ["--model=MeLU", "--task_batch_size=0"], "task_batch_size"),
    _config("epochs-zero", ["--model=MeLU", "--epochs=0"], "epochs"),
    _config("epochs-negative", ["--model=BPR", "--epochs=-1"], "epochs"),
    _config("seed-negative", ["--model=BPR", "--seed=-1"], "seed"),
    _config("dropout-one", ["--model=MeLU", "--dropout_prob=1.0"], "dropout_prob"),
    _config("train-batch-size-zero", ["--model=BPR", "--train_batch_size=0"], "train_batch_size"),
    _config("topk-zero", ["--model=BPR", "--topk=[0]"], "topk"),
    _config("split-ratio-negative", ["--model=MeLU", "--user_split_ratio=[1.2,0,-0.2]"],
            "user_split_ratio"),
    _config("new-user-limit-one", ["--model=MeLU", "--new_user_max_inters=1"],
            "new_user_max_inters"),
    _config("cold-user-ratio-one", ["--model=MeLU", "--cold_user_ratio=1.0"], "cold_user_ratio"),
    _config("empty-shrinkage-grid", ["--model=UserItemBias", "--shrinkage_grid=[]"],
            "shrinkage_grid"),
    _config("empty-phase-plan", ["--model=TargetMF", "--train_phases=[]"], "train_phases"),
    # config: not one of the choices
    _config("feedback-misspelt", ["--model=MeLU", "--meta_feedback=implicite"], "meta_feedback"),
    _config("user-split-unknown", ["--model=MeLU", "--user_split=alphabetic"], "user_split"),
    _config("support-mode-unknown", ["--model=MeLU", "--support_mode=last"], "support_mode"),
    _config("local-update-unknown", ["--model=CCML", "--local_update=all"], "local_update"),
    _config("learner-unknown", ["--model=BPR", "--learner=adamm"], "learner"),
    _config("modality-unknown", ["--model=MML", "--modalities=['id','sound']"], "modalities"),
    _config("eval-mode-unknown", ["--model=BPR", "--eval_args={'mode':'uni0'}"], "eval_args"),
    _config("negative-sampling-unknown",
            ["--model=BPR", "--train_neg_sample_args={'distribution':'pop'}"],
            "train_neg_sample_args"),
    # config: metrics
    _config("metric-unknown", ["--model=MeLU", "--metrics=['nosuch']"], "metrics"),
    _config("valid-metric-unknown", ["--model=MeLU", "--valid_metric=nosuch"], "valid_metric"),
    _config("valid-metric-without-k", ["--model=BPR", "--valid_metric=NDCG"], "valid_metric"),
    _config("valid-metric-k-not-in-topk", ["--model=BPR", "--valid_metric=NDCG@5"],
            "valid_metric"),
    _config("valid-metric-not-in-metrics", ["--model=MeLU", "--metrics=['Recall','NDCG']"],
            "valid_metric"),
    _config("ranking-and-value-metrics", ["--model=MeLU", "--metrics=['MAE','NDCG']"], "metrics"),
    _config("value-metrics-full-ranking", ["--model=BPR", "--metrics=MAE", "--valid_metric=MAE"],
            "metrics"),
    # config: a boolean given another word (RecBole would read it as True)
    _config("boolean-maybe", ["--model=MeLU", "--first_order=maybe"], "first_order"),
    _config("boolean-yes", ["--model=BPR", "--reproducibility=yes"], "reproducibility"),
    _config("boolean-number", ["--model=MeLU", "--cold_start_split=1"], "cold_start_split"),
    _config("sequential-not-repeatable", ["--model=SASRec", "--repeatable=False"], "repeatable"),
    # config: keys
    _config("key-misspelt", ["--model=MeLU", "--epochz=3"], "epochz"),
    # config file
    Case("bad value in a config file", "config file",
         lambda p: _tiny(p, f"--config_files={p['bad_yaml']}"),
         ("learning_rate=-0.5 must be a number > 0 (from config file", "bad.yaml")),
    # output: --result_file
    _output("result file under a file", lambda p: _tiny(p, f"--result_file={p['blocker']}/r.json"),
            "--result_file="),
    _output("result file deep under a file",
            lambda p: _tiny(p, f"--result_file={p['blocker']}/a/b/r.json"), "cannot be written"),
    _output("result file is a folder", lambda p: _tiny(p, f"--result_file={p['dir']}"),
            "is a folder"),
    # output: checkpoint_dir
    _output("checkpoint_dir under a file",
            lambda p: _tiny(p, f"--checkpoint_dir={p['blocker']}/saved"), "checkpoint_dir="),
    _output("checkpoint_dir is a file", lambda p: _tiny(p, f"--checkpoint_dir={p['blocker']}"),
            "cannot be written"),
    # output: run_hyper_coldmeta.py --output_file
    _output("hyper output under a file",
            lambda p: _hyper(p, f"--output_file={p['blocker']}/h.result"), "--output_file="),
    _output("hyper output is a folder", lambda p: _hyper(p, f"--output_file={p['dir']}"),
            "is a folder"),
    # output: the benchmark runner's output folder
    _output("benchmark output under a file",
            lambda p: main([f"--benchmark={p['bench']}", f"--output_dir={p['blocker']}/results"]),
            "--output_dir="),
    _output("benchmark output is a file",
            lambda p: main([f"--benchmark={p['bench']}", f"--output_dir={p['blocker']}"]),
            "cannot be written"),
    _output("benchmark with --result_file",
            lambda p: main([f"--benchmark={p['bench']}", f"--result_file={p['dir']}/r.json"]),
            "--benchmark takes no"),
    # resume: a single run
    _resume("resume of a missing file", lambda p: _tiny(p, f"--resume={p['dir']}/none-last.pth"),
            "no such file"),
    _resume("resume of a text file", lambda p: _tiny(p, f"--resume={p['blocker']}"),
            "is not a last-epoch checkpoint"),
    _resume("resume of another torch file", lambda p: _tiny(p, f"--resume={p['fake']}"),
            "is not a last-epoch checkpoint"),
    _resume("resume of a best-model checkpoint", lambda p: _tiny(p, f"--resume={p['best']}"),
            "is not a last-epoch checkpoint"),
    _resume("resume of another model's checkpoint",
            lambda p: _tiny(p, f"--resume={p['last']}", model="BPR"),
            "written by a run with model=MeLU"),
    _resume("resume with another seed", lambda p: _tiny(p, f"--resume={p['last']}", "--seed=7"),
            "--seed=2020"),
    _resume("resume with no epoch left",
            lambda p: _tiny(p, f"--resume={p['last']}", "--epochs=1"), "nothing is left to train"),
    _resume("resume of a closed-form model",
            lambda p: _tiny(p, f"--resume={p['last']}", model="UserItemBias"),
            "cannot be resumed"),
    _resume("resume of a data-parallel run",
            lambda p: _tiny(p, f"--resume={p['last']}", "--nproc=2"), "single-process"),
    # resume: a phased run
    _resume("resume of a phased model with a single run's checkpoint",
            lambda p: _tiny(p, f"--resume={p['last']}", model="MML"),
            "written by a run with model=MeLU"),
    _resume("resume of a PTUPCDR checkpoint in an EMCDR run",
            lambda p: _cdr(p, "EMCDR", f"--resume={p['phased']}"),
            "written by a run with model=PTUPCDR"),
    _resume("resume in a phase the run does not have",
            lambda p: _cdr(p, "PTUPCDR", f"--resume={p['phased']}",
                           "--train_phases=[{'phase':'source_pretrain'},{'phase':'bridge'}]"),
            "phase target_pretrain, which this run's train_phases"),
    _resume("resume of a refit run without pretrain_refit",
            lambda p: _cdr(p, "PTUPCDR", f"--resume={p['phased']}", "--pretrain_refit=False"),
            "pass --pretrain_refit=True"),
    _resume("resume of a phase with no epoch left",
            lambda p: _cdr(p, "PTUPCDR", f"--resume={p['phased']}", "--epochs=2"),
            "nothing is left to train; raise --epochs"),
    # params file: every value a trial can take is a value the key accepts
    _params("choice of a negative learning rate", "learning_rate choice [0.01,-1]\n",
            "the option learning_rate=-1 must be a number > 0"),
    _params("choice of a word for an integer", "epochs choice ['abc']\n",
            "the option epochs='abc' must be an integer >= 1"),
    _params("choice not among the key's choices", "meta_feedback choice ['implicite']\n",
            "meta_feedback='implicite' is not one of explicit, implicit"),
    _params("uniform range leaving the allowed range", "dropout_prob uniform 0,1.5\n",
            "the uniform bound dropout_prob=1.5 must be a number >= 0 and < 1", "--algo=random"),
    _params("loguniform range leaving the allowed range", "dropout_prob loguniform -3,0.5\n",
            "the loguniform bound dropout_prob=1.64", "--algo=random"),
    _params("uniform of an integer key", "epochs uniform 1,5\n", "draws non-integers",
            "--algo=random"),
    _params("unknown key", "locl_lr choice [0.01]\n", "unknown config key 'locl_lr'"),
    _params("malformed line", "local_lr choice\n", "cannot read 'local_lr choice'"),
]  # fmt: skip


def _lines(text):
    return text.split("\n")


def _set_line(number, make):
    """A breaker that replaces line ``number`` (1-based) by ``make(old_line)``."""

    def breaker(text):
        lines = _lines(text)
        lines[number - 1] = make(lines[number - 1])
        return "\n".join(lines)

    return breaker


def _set_field(number, column, value):
    def make(line):
        fields = line.split("\t")
        fields[column] = value
        return "\t".join(fields)

    return _set_line(number, make)


def _every_third_rating_nan(text):
    lines = _lines(text)
    for number in range(1, len(lines), 3):
        if lines[number]:
            fields = lines[number].split("\t")
            fields[2] = "nan"
            lines[number] = "\t".join(fields)
    return "\n".join(lines)


def _duplicate_line(number):
    def breaker(text):
        lines = _lines(text)
        lines.insert(number, lines[number - 1])
        return "\n".join(lines)

    return breaker


def _data(case_id, suffix, breaker, flags, expected, line):
    """A data case: ``tiny`` copied as ``broken``, its ``suffix`` file broken by ``breaker``
    (of the text; bytes are appended to line 5); the error line names the file, ``line`` (when
    one applies), ``expected`` and the fix."""

    def run(p):
        target = p["dir"] / "data" / "broken"
        target.mkdir(parents=True)
        for source in ("inter", "user", "item"):
            shutil.copy(Path(p["data"]) / "tiny" / f"tiny.{source}", target / f"broken.{source}")
        path = target / f"broken.{suffix}"
        if isinstance(breaker, bytes):
            rows = path.read_bytes().split(b"\n")
            rows[4] = rows[4] + breaker
            path.write_bytes(b"\n".join(rows))
        else:
            path.write_text(breaker(path.read_text(encoding="utf-8")), encoding="utf-8")
        load_col = [] if any(f.startswith("--load_col=") for f in flags) else ["--load_col=None"]
        return main(
            ["--model=MeLU", "--dataset=broken", f"--data_path={p['dir'] / 'data'}",
             "--epochs=1", "--show_progress=False", f"--checkpoint_dir={p['dir'] / 'saved'}",
             *flags, *load_col]
        )  # fmt: skip

    where = () if line is None else (f"line {line}",)
    return Case(case_id, "data", run, (f"broken.{suffix}", expected, *where, "Fix:"), False)


CASES += [
    _data("zero-byte inter", "inter", lambda text: "", [], "is empty", None),
    _data("blank lines only", "inter", lambda text: "\n\n", [], "is empty", None),
    _data("header without types", "inter",
          _set_line(1, lambda line: "user_id\titem_id\trating\ttimestamp"), [],
          "is not name:type", 1),
    _data("unknown type", "inter",
          _set_line(1, lambda line: line.replace("rating:float", "rating:int")), [],
          "type 'int'", 1),
    _data("duplicate column", "inter",
          _set_line(1, lambda line: line.replace("timestamp:float", "rating:float")), [],
          "appears twice", 1),
    _data("comma-separated", "inter", lambda text: text.replace("\t", ","), [], "comma", 1),
    _data("semicolon-separated", "inter", lambda text: text.replace("\t", ";"), [], "semicolon",
          1),
    _data("byte-order mark", "inter", lambda text: "\ufeff" + text, [], "byte-order mark", 1),
    _data("undecodable bytes", "inter", b"\xff", [], "not valid utf-8", 5),
    _data("missing user_id column", "inter",
          _set_line(1, lambda line: line.replace("user_id:", "uid:")), [],
          "no column 'user_id'", 1),
    _data("USER_ID_FIELD names an absent column", "inter", lambda text: text,
          ["--USER_ID_FIELD=customer"], "no column 'customer'", 1),
    _data("header only", "inter", lambda text: _lines(text)[0] + "\n", [],
          "has a header but no rows", None),
    _data("too many fields", "inter", _set_line(7, lambda line: line + "\t9"), [],
          "has 5 field(s)", 7),
    _data("too few fields", "inter", _set_line(9, lambda line: line.rsplit("\t", 1)[0]), [],
          "has 3 field(s)", 9),
    _data("word in a float column", "inter", _set_field(4, 2, "five"), [],
          "'five' is not a number", 4),
    _data("word in the time column", "inter", _set_field(6, 3, "soon"), [],
          "column 'timestamp'", 6),
    _data("missing rating", "inter", _set_field(6, 2, ""), [], "the value is missing", 6),
    _data("a third of ratings nan", "inter", _every_third_rating_nan, [], "rating", 2),
    _data("missing user id", "inter", _set_field(3, 0, ""), [], "column 'user_id'", 3),
    _data("negative rating", "inter", _set_field(8, 2, "-2"), [], "is negative", 8),
    _data("rating 1000 off the scale", "inter", _set_field(10, 2, "1000"), [], "off the scale",
          10),
    _data("rating outside the declared range", "inter", _set_field(11, 2, "6"),
          ["--rating_range=[1,5]"], "outside rating_range", 11),
    _data("repeated pair under duplicate_interactions=error", "inter", _duplicate_line(12),
          ["--duplicate_interactions=error"], "already form a row on line 12", 13),
    _data("load_col names a column the file lacks", "inter", lambda text: text,
          ["--load_col={'inter': ['user_id', 'item_id', 'rating', 'stars']}"],
          "names stars, which the header lacks", 1),
    _data("load_col without an inter entry", "inter", lambda text: text,
          ["--load_col={'user': ['user_id']}"], "load_col has no 'inter' entry", None),
    _data("zero-byte user file", "user", lambda text: "", [], "is empty", None),
    _data("user file without user_id", "user",
          _set_line(1, lambda line: line.replace("user_id:", "uid:")), [],
          "no column 'user_id'", 1),
    _data("item header without types", "item",
          _set_line(1, lambda line: line.replace(":token_seq", "")), [], "is not name:type", 1),
    _data("item file with a short row", "item", _set_line(5, lambda line: "i4"), [],
          "has 1 field(s)", 5),
]  # fmt: skip


@pytest.fixture(scope="module")
def melu_resume_file(tiny_data_path, tmp_path_factory):
    """A real last-epoch checkpoint of MeLU on ``tiny`` (seed 2020), holding epoch 0, and the
    run's best-model checkpoint (RecBole's log folders go to its own folder: module fixtures
    start before the per-test working directory)."""
    folder = tmp_path_factory.mktemp("resume")
    with contextlib.chdir(folder):
        return _melu_checkpoints(tiny_data_path, folder)


def _melu_checkpoints(tiny_data_path, folder):
    config = build_config(
        "MeLU",
        "tiny",
        config_dict={
            "data_path": tiny_data_path,
            "load_col": None,
            "epochs": 2,
            "show_progress": False,
            "checkpoint_dir": str(folder),
            "state": "WARNING",
        },
    )
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    model = get_model("MeLU")(config, train_data.dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "MeLU")(config, model)
    trainer.write_resume_checkpoints = True
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    return trainer.last_checkpoint_file, trainer.saved_model_file


@pytest.fixture
def paths(tmp_path, tiny_data_path, cdr_data_path, melu_resume_file):
    """The files the cases read: a regular file to block paths with, bad checkpoints, a
    benchmark file, a cross-domain config file, a config file with a bad value."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("a regular file\n")
    fake = tmp_path / "fake-last.pth"
    torch.save({"epoch": 3, "state_dict": {}}, fake)  # a dict, but not a last-epoch checkpoint
    benchmark = tmp_path / "bench.yaml"
    benchmark.write_text(
        "name: b\ndataset: tiny\nseeds: [1]\nmodels:\n  - model: BPR\n"
        f"config: {{data_path: {tiny_data_path}, epochs: 1}}\n"
    )
    cdr = tmp_path / "cdr.yaml"
    cdr.write_text(
        f"data_path: {cdr_data_path}\nsource_domain: {{dataset: cdr-s}}\n"
        "target_domain: {dataset: cdr-t}\nepochs: 3\n"
    )
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("learning_rate: -0.5\n")
    last, best = melu_resume_file
    # What a PTUPCDR run on cdr-t stopped in target_pretrain's epoch 2 wrote: the layout of a
    # real one (test_resume.py resumes real ones); only the checks before the data loads read it.
    checkpoint = torch.load(last, weights_only=True)
    progress = {"plan": ["source_pretrain", "target_pretrain", "bridge"], "position": 1,
                "run_model_file": str(tmp_path / "PTUPCDR.pth"), "pretrain_refit": True,
                "initial": None, "kept": [], "refit_epochs": None}  # fmt: skip
    phased = tmp_path / "PTUPCDR-last.pth"
    torch.save(
        {**checkpoint, "model": "PTUPCDR", "dataset": "cdr-t", "epoch": 1, "phase": progress},
        phased,
    )
    return {
        "blocker": blocker,
        "dir": tmp_path,
        "fake": fake,
        "last": last,
        "best": best,
        "phased": phased,
        "bench": benchmark,
        "cdr": cdr,
        "bad_yaml": bad_yaml,
        "data": tiny_data_path,
    }


def _forbid(monkeypatch, target, name, what):
    def forbidden(*args, **kwargs):
        raise AssertionError(f"{what} before the bad input was reported")

    monkeypatch.setattr(target, name, forbidden, raising=False)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_bad_input_is_one_error_line_and_exit_code_2(case, paths, monkeypatch, capsys):
    _forbid(monkeypatch, ColdMetaTrainerMixin, "fit", "training started")
    _forbid(monkeypatch, Trainer, "fit", "training started")
    if case.up_front:
        _forbid(monkeypatch, quick_start, "create_dataset", "the data loaded")
        _forbid(monkeypatch, quick_start, "run_coldmeta_parallel", "processes started")
        _forbid(monkeypatch, objective, "create_dataset", "the tuning data loaded")
    code = case.run(paths)
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2, captured.err[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err[-2000:]
    for expected in case.expected:
        assert expected in lines[0]
    assert "Traceback" not in captured.out + captured.err


def test_the_catalogue_covers_each_class():
    assert len(CASES) >= 40 and len({case.id for case in CASES}) == len(CASES)
    assert {case.kind for case in CASES} == set(CLASSES)
