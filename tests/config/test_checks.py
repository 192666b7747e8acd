"""Typed config keys: the declaration grammar, the shipped declarations, and the checks."""

from pathlib import Path

import pytest
import recbole
import torch
import yaml

from recbole_coldmeta.config import Config
from recbole_coldmeta.config.checks import (
    RECBOLE_KEYS_FILE,
    file_declarations,
    parse_declaration,
    run_declarations,
)
from recbole_coldmeta.registry import get_model, plugin_model_names
from recbole_coldmeta.utils import ConfigError, properties_dir

#: Files a Config layers (never properties/benchmark/ or properties/hyper/).
LAYERED = ("overall.yaml", "protocol/*.yaml", "model/*.yaml", "dataset/*.yaml")
#: Files whose declaration of a key every other file must restate with the same type (model
#: files may differ from each other: no run layers two of them).
BASE = (RECBOLE_KEYS_FILE, "overall.yaml", "protocol/*.yaml")
CDR_EXAMPLE = str(properties_dir() / "dataset" / "cdr-example.yaml")


def _layered_files():
    root = properties_dir()
    return [root / RECBOLE_KEYS_FILE] + [p for g in LAYERED for p in sorted(root.glob(g))]


def _recbole_defaults():
    root = Path(recbole.__file__).resolve().parent / "properties"
    loader = Config._build_yaml_loader(None)
    values = {}
    for name in ("overall.yaml", "dataset/sample.yaml"):
        with open(root / name, encoding="utf-8") as f:
            values.update(yaml.load(f, Loader=loader))
    return values


@pytest.mark.parametrize(
    "text, accepted, refused",
    [
        ("int, >= 1", [1, 300], [0, -1, 1.0, "abc", True, None]),
        ("float, > 0, < 1", [0.5, 1e-3], [0, 1, -0.1, "0.5", False]),
        ("int or None, >= 2", [None, 2], [1, "2"]),
        ("str: explicit | implicit", ["explicit"], ["implicite", "Explicit", 1]),
        ("str or None: INFO | DEBUG, any case", ["info", "DEBUG", None], ["verbose"]),
        ("bool", [True, False], ["maybe", "false", 0, 1, None]),
        ("list of int, >= 1", [[], [1, 5]], [[0], [1.5], (1, 2), 3]),
        ("list of float, >= 0, non-empty", [[0, 1.5]], [[], [-1]]),
        ("list of str: id | text", [["id"], []], [["id", "sound"], "id"]),
        ("int or list of int, >= 1", [5, [5, 10]], [0, [0], None]),
        ("str or list of float or None", ["[5,inf)", [13, 100], None], [{"a": 1}]),
    ],
)
def test_declarations_accept_and_refuse(text, accepted, refused):
    declaration = parse_declaration(text)
    for value in accepted:
        assert declaration.problem(value) is None, value
    for value in refused:
        assert declaration.problem(value) is not None, value


@pytest.mark.parametrize("text", ["integer", "int, >= one", "int, positive", "list of set"])
def test_a_declaration_outside_the_grammar_is_refused(text):
    with pytest.raises(ValueError, match="unknown"):
        parse_declaration(text, "x.yaml:1")


def test_the_accepted_form_is_said_in_words():
    assert parse_declaration("int, >= 1").describe() == "an integer >= 1"
    assert parse_declaration("int or None, >= 2").describe() == "an integer >= 2 or None"
    assert (
        parse_declaration("list of float, >= 0, non-empty").describe()
        == "a non-empty list of numbers, each >= 0"
    )


@pytest.mark.parametrize("path", _layered_files(), ids=lambda p: p.relative_to(properties_dir()))
def test_every_key_of_a_layered_file_declares_its_type(path):
    with open(path, encoding="utf-8") as f:
        keys = set(yaml.safe_load(f) or {})
    assert keys == set(file_declarations(str(path)))


def test_a_key_has_one_type_in_every_file():
    """A later file restates the type of the base files (recbole_keys, overall, protocols)."""
    base = {}
    for path in (p for g in BASE for p in sorted(properties_dir().glob(g))):
        for key, declaration in file_declarations(str(path)).items():
            base.setdefault(key, declaration)
    for path in _layered_files():
        for key, declaration in file_declarations(str(path)).items():
            if key in base:
                assert declaration.types == base[key].types, (declaration.where, base[key].where)


@pytest.mark.parametrize("path", _layered_files(), ids=lambda p: p.relative_to(properties_dir()))
def test_every_value_of_a_layered_file_passes_its_declaration(path):
    declarations = run_declarations([properties_dir() / "overall.yaml", path])
    with open(path, encoding="utf-8") as f:
        values = yaml.load(f, Loader=Config._build_yaml_loader(None)) or {}
    for key, value in values.items():
        assert declarations[key].problem(value) is None, (path.name, key, value)


def test_recbole_keys_restate_recbole_defaults():
    path = properties_dir() / RECBOLE_KEYS_FILE
    with open(path, encoding="utf-8") as f:
        ours = yaml.load(f, Loader=Config._build_yaml_loader(None))
    assert ours == _recbole_defaults()


def test_recbole_keys_file_is_not_layered():
    config = Config("BPR")
    assert all(path.name != RECBOLE_KEYS_FILE for path in config._property_files)


@pytest.mark.parametrize("model", plugin_model_names())
def test_every_shipped_default_passes_its_declaration(model):
    cross_domain = "cross_domain" in getattr(get_model(model), "protocols", ())
    Config(model, config_file_list=[CDR_EXAMPLE] if cross_domain else None)


@pytest.mark.parametrize(
    "dataset", sorted(p.stem for p in (properties_dir() / "dataset").glob("*"))
)
def test_every_shipped_dataset_file_passes(dataset):
    Config("BPR", dataset)


@pytest.mark.parametrize(
    "model, args, message",
    [
        ("MeLU", ["--epochs=abc"], r"^epochs='abc' must be an integer >= 1\.$"),
        ("MeLU", ["--epochs=0"], r"^epochs=0 must be an integer >= 1\.$"),
        ("BPR", ["--seed=abc"], r"^seed='abc' must be an integer >= 0"),
        ("MeLU", ["--learning_rate=-1"], r"^learning_rate=-1 must be a number > 0\.$"),
        ("MeLU", ["--task_batch_size=0"], r"^task_batch_size=0 must be an integer >= 1\.$"),
        (
            "MeLU",
            ["--meta_feedback=implicite"],
            r"meta_feedback='implicite' is not one of explicit",
        ),
        ("MeLU", ["--first_order=maybe"], r"^first_order='maybe' must be True or False\.$"),
        ("MML", ["--modalities=['id','sound']"], r"modalities=.* is not one of id, text, image"),
        ("MeLU", ["--metrics=['nosuch']"], r"unknown metric\(s\) \['nosuch'\]; known: .*QueryNDCG"),
        ("MeLU", ["--valid_metric=nosuch"], r"valid_metric='nosuch' .* one of mae, rmse"),
        ("BPR", ["--valid_metric=NDCG"], r"valid_metric='NDCG' .* one of .*ndcg@10"),
        ("BPR", ["--valid_metric=NDCG@5"], r"with topk=\[10\]"),
        ("MeLU", ["--metrics=['Recall']"], r"valid_metric='MAE' must name a result"),
        ("MeLU", ["--metrics=['Recall','MAE']"], r"mixes ranking and value metrics"),
        ("BPR", ["--metrics=['MAE']", "--valid_metric=MAE"], r"eval_args mode is full"),
        ("BPR", ["--topk=[5,0]"], r"^topk=\[5, 0\] must be an integer >= 1 or a list"),
        ("BPR", ["--eval_args={'mode':'uni0'}"], r"eval_args mode='uni0'"),
        ("BPR", ["--eval_args={'order':'XO'}"], r"eval_args order='XO' is not one of RO, TO"),
        ("BPR", ["--train_neg_sample_args={'distribution':'pop'}"], r"distribution='pop'"),
        ("BPR", ["--learner=adamm"], r"learner='adamm' is not one of adam, adamw"),
        ("MeLU", ["--mlp_hidden_size=64,64"], r"mlp_hidden_size=\(64, 64\) must be a list"),
        (
            "MeLU",
            ["--dist_backend=mpi"],
            r"dist_backend='mpi' is not one of nccl, gloo \(or None\)",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_key_value_and_form(model, args, message):
    with pytest.raises(ConfigError, match=message) as error:
        Config(model, cmd_args=args)
    assert "\n" not in str(error.value)


def test_a_bad_value_from_a_file_names_the_file(tmp_path):
    file = tmp_path / "c.yaml"
    file.write_text("epochs: 0\n")
    with pytest.raises(ConfigError, match=r"epochs=0 must be .* \(from config file '.*c.yaml'\)"):
        Config("BPR", config_file_list=[str(file)])


def test_a_bad_source_domain_key_is_refused():
    with pytest.raises(ConfigError, match=r"source_domain: field_separator=''"):
        Config(
            "PTUPCDR",
            config_file_list=[CDR_EXAMPLE],
            config_dict={"source_domain": {"dataset": "cdr-example-books", "field_separator": ""}},
        )


@pytest.mark.parametrize(
    "model, args, key, value",
    [
        ("MeLU", ["--first_order=false"], "first_order", False),
        ("MeLU", ["--first_order=False"], "first_order", False),
        ("MeLU", ["--first_order=true"], "first_order", True),
        ("MeLU", ["--split_time=~"], "split_time", None),
        ("MeLU", ["--split_time=None"], "split_time", None),
        ("MeLU", ["--new_user_max_inters=null"], "new_user_max_inters", None),
        ("MeLU", ["--user_inter_num_interval=[13,100]"], "user_inter_num_interval", [13, 100]),
        ("MeLU", ["--user_inter_num_interval=[5,inf)"], "user_inter_num_interval", "[5,inf)"),
        ("MeLU", ["--valid_metric=query_ndcg@3"], "valid_metric", "query_ndcg@3"),
        ("MeLU", ["--metrics=MAE", "--valid_metric=mae"], "metrics", ["MAE"]),
        ("BPR", ["--topk=5", "--valid_metric=NDCG@5"], "topk", [5]),
        ("BPR", ["--learner=Adam"], "learner", "Adam"),
        ("BPR", ["--state=warning"], "state", "warning"),
        ("BPR", ["--seed=0"], "seed", 0),
        ("BPR", ["--load_col=None"], "load_col", None),
        ("MeLU", ["--mlp_hidden_size=[64,64]"], "mlp_hidden_size", [64, 64]),
    ],
)
def test_good_values_keep_passing(model, args, key, value):
    assert Config(model, cmd_args=args)[key] == value


@pytest.mark.parametrize("available", [False, True])
def test_the_logged_use_gpu_says_whether_cuda_is_there(monkeypatch, available):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    config = Config("BPR")
    assert config["use_gpu"] is available
    assert config["device"].type == ("cuda" if available else "cpu")
