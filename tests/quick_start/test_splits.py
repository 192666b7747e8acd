"""Saved splits end to end: run -> manifest -> ``split_file`` run, the export and audit command,
the benchmark's one manifest per split."""

import json

import pytest

from recbole_coldmeta.data.manifest import read_manifest
from recbole_coldmeta.quick_start import run_coldmeta, write_result
from recbole_coldmeta.quick_start.benchmark import _keep_split
from recbole_coldmeta.quick_start.splits import main


@pytest.mark.parametrize("model", ["BPR", "MeLU"])
def test_a_manifest_round_trips_to_identical_metrics(model, tiny_config, tmp_path):
    config = {**tiny_config, "seed": 11, "epochs": 2}
    first = tmp_path / "first.json"
    write_result(run_coldmeta(model, "tiny", config_dict=config), str(first))
    saved = json.loads(first.read_text())
    manifest = tmp_path / "first.split.csv.gz"
    assert read_manifest(str(manifest)).sha256 == saved["split_sha256"]
    again = run_coldmeta(model, "tiny", config_dict={**config, "split_file": str(manifest)})
    assert again["split_sha256"] == saved["split_sha256"]
    assert again["split"] == saved["split"]
    assert again["test_result"] == saved["test_result"]
    assert again["valid_result"] == saved["valid_result"]


def _printed_report(out):
    """The JSON object the command printed last (its lines from the last ``{`` line)."""
    lines = out.splitlines()
    start = max(number for number, line in enumerate(lines) if line == "{")
    return json.loads("\n".join(lines[start:]))


def _common(tiny_data_path):
    return [f"--data_path={tiny_data_path}", "--load_col=None", "--state=WARNING"]


def test_export_then_audit_prints_the_counts(tiny_data_path, tmp_path, capsys):
    output = tmp_path / "out" / "tiny.split.csv.gz"
    args = ["--model=BPR", "--dataset=tiny", "--seed=4", f"--output={output}"]
    assert main(["export", *args, *_common(tiny_data_path)]) == 0
    exported = _printed_report(capsys.readouterr().out)
    assert exported["sha256"] == read_manifest(str(output)).sha256
    assert exported["output"] == str(output)
    audit = ["audit", str(output), "--dataset=tiny", "--seed=5", *_common(tiny_data_path)]
    assert main(audit) == 0
    report = _printed_report(capsys.readouterr().out)
    assert report["sha256"] == read_manifest(str(output)).sha256
    assert report["users"]["test"] > 0 and report["query_pairs_in_training"] == 0
    assert report["dataset"]["test_rows"] == report["rows"]["test_query"]


def test_audit_of_a_bad_manifest_is_one_line_on_stderr(tmp_path, capsys):
    path = tmp_path / "made.csv"
    path.write_text("user,item,role\nu1,i1,meta_train\nu2,i1,test\n")
    assert main(["audit", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "made.csv line 3: unknown role 'test'" in err


def test_the_benchmark_keeps_one_manifest_per_split(tiny_config, tmp_path):
    from recbole_coldmeta.data import create_dataset
    from recbole_coldmeta.quick_start import build_config

    manifests = []
    for seed in (1, 1, 2):
        dataset = create_dataset(
            build_config("BPR", "tiny", config_dict={**tiny_config, "seed": seed})
        )
        dataset.build()
        manifests.append(dataset.split_manifest)
    kept = [_keep_split(str(tmp_path), {"split_manifest": m}) for m in manifests]
    assert kept[0] == kept[1] != kept[2]
    assert sorted(p.name for p in (tmp_path / "splits").iterdir()) == sorted(
        {f"{m.sha256}.split.csv.gz" for m in manifests}
    )
    assert (
        read_manifest(str(tmp_path / kept[2]["split_manifest"])).sha256 == kept[2]["split_sha256"]
    )
    assert _keep_split(str(tmp_path), {}) == {}


def test_a_split_file_cannot_serve_several_test_states(states_config):
    from recbole_coldmeta.utils import ConfigError

    config = {**states_config, "split_file": "saved.split.csv.gz", "also_test_states": ["test_b"]}
    with pytest.raises(ConfigError, match="also_test_states builds each further state's split"):
        run_coldmeta("MeLU", "states", config_dict=config)
