"""The benchmark runner: checks before training, resumable runs, mean ± std tables, the plot."""

import csv
import glob
import os

import pytest

from recbole_coldmeta.quick_start.benchmark import load_benchmark, run_benchmark, summarize
from recbole_coldmeta.quick_start.cli import main
from recbole_coldmeta.quick_start.user_results import read_user_results
from recbole_coldmeta.utils import ConfigError, properties_dir

_PROPS = str(properties_dir())

SPEC = """
name: demo
dataset: tiny
seeds: [1, 2]
config: {epochs: 1}
models:
  - model: GlobalMean
  - model: MeLU
    label: MeLU fo
    config: {first_order: True}
"""


def _fake_runner(calls):
    def runner(model, dataset, config_file_list=None, config_dict=None):
        calls.append((model, config_dict["seed"], dict(config_dict)))
        mae = 1.0 if model == "GlobalMean" else 0.8 + 0.01 * config_dict["seed"]
        metrics = {"mae": mae, "query_ndcg@3": 1.0 - mae / 2}
        return {
            "test_result": metrics,
            "valid_result": metrics,
            "train_seconds": 0.1,
            "split": {"test_users": config_dict["seed"]},
        }

    return runner


def test_runs_every_model_and_seed_once_and_resumes(tmp_path):
    spec = tmp_path / "b.yaml"
    spec.write_text(SPEC)
    calls = []
    folder = run_benchmark(str(spec), str(tmp_path / "out"), runner=_fake_runner(calls))
    assert sorted((m, s) for m, s, _ in calls) == [
        ("GlobalMean", 1),
        ("GlobalMean", 2),
        ("MeLU", 1),
        ("MeLU", 2),
    ]
    assert all(c["epochs"] == 1 for *_, c in calls)
    assert [c["first_order"] for m, _, c in calls if m == "MeLU"] == [True, True]
    rows = list(csv.DictReader(open(f"{folder}/runs.csv")))
    assert len(rows) == 4 and {r["label"] for r in rows} == {"GlobalMean", "MeLU fo"}
    table = open(f"{folder}/table.md").read()
    assert "| MeLU fo | **0.8150 ± 0.0071** |" in table  # smaller MAE is better
    assert "| GlobalMean | 1.0000 ± 0.0000 |" in table
    assert (tmp_path / "out" / "demo" / "plot.png").stat().st_size > 1000
    again = []
    run_benchmark(str(spec), str(tmp_path / "out"), runner=_fake_runner(again))
    assert again == []


STATES = """
name: states
dataset: tiny
seeds: [1, 2]
settings:
  - {label: A, config: {test_state: a}}
  - {label: B, config: {test_state: b}}
models:
  - model: GlobalMean
  - model: MeLU
    train_once: True
"""


@pytest.mark.parametrize(
    "text, message",
    [
        (SPEC.replace("GlobalMean", "GlobalMeen"), "Unknown model 'GlobalMeen'"),
        (SPEC + "colour: red\n", "unknown keys \\['colour'\\]"),
        (SPEC.replace("seeds: [1, 2]", "seeds: []"), "non-empty 'seeds'"),
        (SPEC.replace("label: MeLU fo", "label: GlobalMean"), "labels \\['GlobalMean'\\] twice"),
        (STATES.replace("{test_state: b}", "{test_state: b, epochs: 2}"), "test_state and nothing"),
        (STATES.replace("model: MeLU", "model: ItemMean"), "train_once is for meta-learners"),
        (
            STATES.replace("train_once: True", "train_twice: True"),
            "unknown keys \\['train_twice'\\]",
        ),
    ],
)
def test_bad_benchmark_files_fail_before_training(tmp_path, text, message):
    spec = tmp_path / "b.yaml"
    spec.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_benchmark(str(spec))


def test_cli_reports_a_missing_benchmark_file(capsys):
    assert main(["--benchmark=nowhere.yaml"]) == 2
    assert "Benchmark file 'nowhere.yaml' does not exist" in capsys.readouterr().err


def test_cli_names_every_output_the_benchmark_wrote(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "out"
    (folder / "users").mkdir(parents=True)
    for name in ("runs.csv", "table.md", "plot.png", "kshot.md"):
        (folder / name).write_text("| table |\n")
    monkeypatch.setattr(
        "recbole_coldmeta.quick_start.benchmark.run_benchmark", lambda *args: str(folder)
    )
    assert main([f"--benchmark={properties_dir() / 'benchmark' / 'ml-100k.yaml'}"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    named = last.removeprefix("benchmark outputs: ").split(", ")
    assert named == [
        f"{folder}/{n}" for n in ("runs.csv", "table.md", "plot.png", "kshot.md", "users")
    ]


def test_summarize_groups_models_by_metric_set():
    runs = [
        {"label": "A", "seed": "1", "test/mae": "0.9", "test/recall@10": ""},
        {"label": "B", "seed": "1", "test/recall@10": "0.2", "test/mae": ""},
    ]
    table = summarize(runs, ["A", "B"])
    assert table.count("| model |") == 2


def test_settings_multiply_the_runs_and_get_one_table_each(tmp_path):
    spec = tmp_path / "b.yaml"
    spec.write_text(
        SPEC
        + """settings:
  - {label: "beta=20%", config: {cold_user_ratio: 0.2}}
  - {label: "beta=80%", config: {cold_user_ratio: 0.8, epochs: 2}}
"""
    )
    calls = []
    folder = run_benchmark(str(spec), str(tmp_path / "out"), runner=_fake_runner(calls))
    assert len(calls) == 2 * 2 * 2
    assert sorted({c["cold_user_ratio"] for *_, c in calls}) == [0.2, 0.8]
    assert {c["epochs"] for *_, c in calls if c["cold_user_ratio"] == 0.8} == {2}
    rows = list(csv.DictReader(open(f"{folder}/runs.csv")))
    assert {r["setting"] for r in rows} == {"beta=20%", "beta=80%"}
    table = open(f"{folder}/table.md").read()
    assert table.index("#### beta=20%") < table.index("#### beta=80%")
    assert table.count("| MeLU fo |") == 2
    again = []
    run_benchmark(str(spec), str(tmp_path / "out"), runner=_fake_runner(again))
    assert again == []


def test_a_setting_without_label_is_refused(tmp_path):
    spec = tmp_path / "b.yaml"
    spec.write_text(SPEC + "settings:\n  - {config: {cold_user_ratio: 0.2}}\n")
    with pytest.raises(ConfigError, match="needs a 'label'"):
        load_benchmark(str(spec))


_SHIPPED = sorted(
    os.path.basename(path)[: -len(".yaml")]
    for path in glob.glob(os.path.join(_PROPS, "benchmark", "*.yaml"))
)


def test_every_shipped_benchmark_is_checked():
    assert len(_SHIPPED) >= 12 and "ml-1m" in _SHIPPED and "ml-100k" in _SHIPPED


@pytest.mark.parametrize("name", _SHIPPED)
def test_shipped_benchmarks_load(name):
    spec = load_benchmark(f"properties/benchmark/{name}.yaml".replace("properties", _PROPS))
    assert spec["models"] and spec["settings"]


def test_a_misspelled_config_key_fails_at_load(tmp_path):
    spec = tmp_path / "b.yaml"
    spec.write_text(SPEC.replace("config: {first_order: True}", "config: {frist_order: True}"))
    with pytest.raises(ConfigError, match="frist_order"):
        load_benchmark(str(spec))


def _fake_state_runner(calls):
    def runner(model, dataset, config_file_list=None, config_dict=None):
        calls.append((model, config_dict["test_state"], config_dict.get("also_test_states")))
        states = [config_dict["test_state"], *(config_dict.get("also_test_states") or [])]
        results = {state: {"mae": 0.5 if state == "a" else 0.7} for state in states}
        return {
            "test_result": results[states[0]],
            "valid_result": {"mae": 0.6},
            "train_seconds": 0.1,
            "split": {"state": states[0]},
            "state_results": results,
            "state_splits": {state: {"state": state} for state in states},
        }

    return runner


def test_train_once_trains_per_seed_and_reports_every_state(tmp_path):
    spec = tmp_path / "b.yaml"
    spec.write_text(STATES)
    calls = []
    folder = run_benchmark(str(spec), str(tmp_path / "out"), runner=_fake_state_runner(calls))
    assert sorted(c for c in calls if c[0] == "MeLU") == [("MeLU", "a", ["b"])] * 2
    assert sorted(c for c in calls if c[0] == "GlobalMean") == [
        ("GlobalMean", "a", None),
        ("GlobalMean", "a", None),
        ("GlobalMean", "b", None),
        ("GlobalMean", "b", None),
    ]
    rows = [r for r in csv.DictReader(open(f"{folder}/runs.csv")) if r["label"] == "MeLU"]
    by_setting = {(r["setting"], r["seed"]): r for r in rows}
    assert len(rows) == 4
    assert (
        by_setting[("B", "1")]["test/mae"] == "0.7" and by_setting[("A", "2")]["test/mae"] == "0.5"
    )
    assert by_setting[("B", "1")]["split"] == '{"state": "b"}'
    assert {r["trained_in"] for r in rows} == {"A"}
    again = []
    run_benchmark(str(spec), str(tmp_path / "out"), runner=_fake_state_runner(again))
    assert again == []


@pytest.mark.parametrize(
    "text, message",
    [
        (SPEC + "reference: UserItemBias\n", "reference 'UserItemBias' is not a model label"),
        (SPEC + "reference: MeLU\n", "reference 'MeLU' is not a model label"),  # label: MeLU fo
        (
            SPEC.replace("{epochs: 1}", "{epochs: 1, user_results: False}")
            + "reference: MeLU fo\n",
            "user_results: False switches off",
        ),
    ],
)
def test_a_bad_reference_fails_at_load(tmp_path, text, message):
    spec = tmp_path / "b.yaml"
    spec.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_benchmark(str(spec))


PAIRED = """
name: paired
dataset: tiny
seeds: [1, 2]
reference: UserItemBias
config: {{data_path: "{data_path}", load_col: ~, show_progress: False, state: WARNING}}
models:
  - model: UserItemBias
  - model: GlobalMean
  - model: UserMean
  - model: BPR
    config: {{epochs: 1}}
"""


def test_a_tiny_benchmark_keeps_per_user_results_and_tables_the_paired_differences(
    tmp_path, tiny_data_path
):
    spec = tmp_path / "b.yaml"
    spec.write_text(PAIRED.format(data_path=tiny_data_path))
    folder = run_benchmark(str(spec), str(tmp_path / "out"))
    rows = list(csv.DictReader(open(f"{folder}/runs.csv")))
    assert len(rows) == 8 and len({r["user_results"] for r in rows}) == 8
    users = read_user_results(f"{folder}/{rows[0]['user_results']}")
    assert {r["split"] for r in users} == {"valid", "test"}
    table = open(f"{folder}/table.md").read()
    assert "Δ vs UserItemBias [95% CI], p (Holm)" in table
    assert "| GlobalMean | pooled |" in table and "| UserMean | 2 |" in table
    assert "| UserItemBias | pooled |" not in table
    assert table.count("Δ vs") == 1  # BPR's ranking metrics have no reference to pair with
    # GlobalMean ignores users and items: clearly worse than UserItemBias in MAE on tiny data
    global_mean = next(line for line in table.splitlines() if line.startswith("| GlobalMean | "))
    assert global_mean.split(" | ")[1].endswith(" ▼")
    again = []

    def runner(*args, **kwargs):
        again.append(args)

    run_benchmark(str(spec), str(tmp_path / "out"), runner=runner)
    assert again == [] and open(f"{folder}/table.md").read() == table


def _fake_user_runner(model, dataset, config_file_list=None, config_dict=None):
    """MeLU (trained once, tested on every state) is 0.1 (state a) or 0.2 (state b) below
    GlobalMean on every user; each state has its own users."""
    states = [config_dict["test_state"], *(config_dict.get("also_test_states") or [])]
    offset = {"a": 0.1, "b": 0.2}

    def rows(state):
        tested_state = state if config_dict.get("also_test_states") else ""
        mae = [0.7 + 0.01 * u - (offset[state] if model == "MeLU" else 0.0) for u in range(20)]
        return [
            {"split": "test", "state": tested_state, "user": f"{state}{u}", "n_rows": 2,
             "mae": value}
            for u, value in enumerate(mae)
        ]  # fmt: skip

    results = {state: {"mae": sum(r["mae"] for r in rows(state)) / 20} for state in states}
    result = {"test_result": results[states[0]], "valid_result": {"mae": 0.6}}
    result.update(train_seconds=0.1, user_results=[row for s in states for row in rows(s)])
    if config_dict.get("also_test_states"):
        result.update(state_results=results, state_splits={s: {} for s in states})
    return result


def test_train_once_runs_are_paired_on_each_settings_state(tmp_path):
    spec = tmp_path / "b.yaml"
    spec.write_text(STATES + "reference: GlobalMean\n")
    folder = run_benchmark(str(spec), str(tmp_path / "out"), runner=_fake_user_runner)
    table = open(f"{folder}/table.md").read()
    setting_b = table[table.index("#### B") :]
    assert "| MeLU | pooled | 40 | -0.1000 [-0.1000, -0.1000], p=" in table[: table.index("#### B")]
    assert "| MeLU | pooled | 40 | -0.2000 [-0.2000, -0.2000], p=" in setting_b
