"""A benchmark's K-shot table and plot (``shots:``) and its breakdown by group (``breakdown:``)."""

import csv
import logging
import re

import pytest

from recbole_coldmeta.quick_start.benchmark import load_benchmark, run_benchmark
from recbole_coldmeta.utils import ConfigError

SPEC = """
name: demo
dataset: tiny
seeds: [1, 2]
models:
  - model: GlobalMean
  - model: MeLU
"""


def _fake_runner(model, dataset, config_file_list=None, config_dict=None):
    """20 test users a seed: user u has 2 + u support rows and query popularity u; MeLU's MAE
    drops with K, GlobalMean is refitted and flat."""
    seed, meta = config_dict["seed"], model == "MeLU"
    rows = [
        {"split": "test", "state": "", "user": f"u{u}", "n_rows": 2, "n_support": 2 + u,
         "query_popularity": float(u), "mae": 0.5 + 0.01 * u + 0.001 * seed}
        for u in range(20)
    ]  # fmt: skip
    if model == "GlobalMean" and seed == 2:  # a per-user file written before the new columns
        rows = [{key: row[key] for key in row if key not in ("n_support", "query_popularity")}
                for row in rows]  # fmt: skip
    result = {"test_result": {"mae": 0.6}, "valid_result": {"mae": 0.6}, "train_seconds": 0.1}
    result["user_results"] = rows
    if config_dict.get("shots"):
        shots = {str(k): {"mae": (1.0 - 0.01 * k if meta else 0.9) + 0.01 * seed}
                 for k in config_dict["shots"]}  # fmt: skip
        result.update(shot_results=shots, shot_users=17, shot_refit=not meta, shot_seconds=0.2)
    return result


def test_kshot_table_and_plot(tmp_path):
    spec = tmp_path / "b.yaml"
    spec.write_text(SPEC + "shots: [0, 1, 5]\n")
    folder = run_benchmark(str(spec), str(tmp_path / "out"), runner=_fake_runner)
    runs = list(csv.DictReader(open(f"{folder}/runs.csv")))
    assert {run["shots/5/mae"] for run in runs if run["label"] == "MeLU"} == {"0.96", "0.97"}
    table = open(f"{folder}/kshot.md").read()
    assert "| model | K=0 | K=1 | K=5 | users | fit |" in table
    melu = "| MeLU | 1.0150 ± 0.0071 | 1.0050 ± 0.0071 | 0.9650 ± 0.0071 | 34 | one model |"
    assert melu in table
    assert "| GlobalMean | 0.9150 ± 0.0071 | " in table and "| 34 | refitted per K |" in table
    assert (tmp_path / "out" / "demo" / "kshot.png").stat().st_size > 1000
    assert not (tmp_path / "out" / "demo" / "breakdown.md").exists()


def test_breakdown_groups_add_up_to_the_users(tmp_path, caplog):
    spec = tmp_path / "b.yaml"
    spec.write_text(SPEC + "breakdown: {support_size: [5, 10, 20], query_popularity: 4}\n")
    with caplog.at_level(logging.WARNING):
        folder = run_benchmark(str(spec), str(tmp_path / "out"), runner=_fake_runner)
    assert "predates n_support" in caplog.text  # GlobalMean seed 2: an old file, left out
    text = open(f"{folder}/breakdown.md").read()
    support = text[text.index("#### mae by support_size") : text.index("#### mae by query_pop")]
    counts = re.findall(r"^\| (support [^|]+) \| ([0-9/]+) \|", support, re.M)
    # sizes 2..21: 3 below 5, 5 in 5-9, 10 in 10-19, 2 from 20; MeLU 2 seeds, GlobalMean 1
    assert counts == [
        ("support < 5", "3/6"),
        ("support 5–9", "5/10"),
        ("support 10–19", "10/20"),
        ("support ≥ 20", "2/4"),
    ]
    popularity = text[text.index("#### mae by query_popularity") :]
    quarters = re.findall(r"^\| (popularity \d/4) \| ([0-9/]+) \|", popularity, re.M)
    assert [name for name, _ in quarters] == [f"popularity {q}/4" for q in (1, 2, 3, 4)]
    assert sum(int(users.split("/")[-1]) for _, users in quarters) == 40  # MeLU: 20 a seed
    assert "| support < 5 | 3/6 | 0.5110 ± 0.0000 | 0.5115 ± 0.0007 |" in support
    assert (tmp_path / "out" / "demo" / "breakdown.png").stat().st_size > 1000


@pytest.mark.parametrize(
    "text, message",
    [
        ("shots: [-1, 3]", r"shots=\[-1, 3\] must be a non-empty list of integers, each >= 0"),
        ("shots: [1.5]", r"shots=\[1.5\] must be"),
        ("shots: []", r"shots=\[\] must be"),
        ("shots: 3", r"shots=3 must be"),
        ("shots: [0, 1]\nmodels: [{model: SASRec}]", r"SASRec is sequential"),
        ("breakdown: {activity: 3}", r"breakdown=\{'activity': 3\} must map some of"),
        ("breakdown: {support_size: [10, 0]}", r"support_size=\[10, 0\] must be ascending"),
        ("breakdown: {support_size: [0, 1.5]}", r"support_size=\[0, 1.5\] must be ascending"),
        ("breakdown: {query_popularity: 1}", r"query_popularity=1 must be an integer >= 2"),
    ],
)
def test_bad_shots_and_breakdowns_fail_at_load(text, message, tmp_path):
    spec = tmp_path / "b.yaml"
    spec.write_text(SPEC + text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_benchmark(str(spec))


TINY = """
name: tiny-curves
dataset: tiny
seeds: [1]
config: {{epochs: 1, data_path: {data_path}, load_col: ~, show_progress: False}}
shots: [0, 2, 5]
breakdown: {{support_size: [0, 10], query_popularity: 3}}
models:
  - model: UserItemBias
  - model: MeLU
"""


def test_a_tiny_benchmark_with_shots_and_breakdown(tmp_path, tiny_data_path):
    spec = tmp_path / "b.yaml"
    spec.write_text(TINY.format(data_path=tiny_data_path))
    folder = run_benchmark(str(spec), str(tmp_path / "out"))
    runs = list(csv.DictReader(open(f"{folder}/runs.csv")))
    splits = {run["split"] for run in runs}
    assert len(splits) == 1 and {run["shot_users"] for run in runs} == {"12"}
    table = open(f"{folder}/kshot.md").read()
    assert re.search(r"^\| UserItemBias \| .* \| 12 \| refitted per K \|$", table, re.M)
    assert re.search(r"^\| MeLU \| .* \| 12 \| one model \|$", table, re.M)
    text = open(f"{folder}/breakdown.md").read()
    for dimension in ("support_size", "query_popularity"):
        part = text[text.index(f"#### mae by {dimension}") :].split("\n\n")[1]
        counts = re.findall(r"^\| [^|]+ \| (\d+) \|", part, re.M)
        assert sum(int(count) for count in counts) == 12  # the seed's test users, once each
