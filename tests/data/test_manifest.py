"""Split manifests: a saved split rebuilds the same split; bad manifests are one clear line."""

import gzip

import numpy as np
import pytest
import torch

from recbole_coldmeta.data import create_dataset
from recbole_coldmeta.data.manifest import SplitManifest, audit, check_manifest, read_manifest
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.utils import ColdMetaError, ConfigError, DataError
from recbole_coldmeta.utils.enums import Role


def _split(model, config):
    dataset = create_dataset(build_config(model, "tiny", config_dict=config))
    return dataset, dataset.build()


def _manifest(tmp_path, config, model="BPR", name="saved.split.csv.gz"):
    dataset, parts = _split(model, config)
    path = tmp_path / name
    dataset.split_manifest.write(str(path))
    return str(path), dataset, parts


def _csv_lines(path):
    """The manifest's CSV lines (column names first), without its header line."""
    return gzip.open(path, "rt", encoding="utf-8").read().splitlines()[1:]


def _user_made(tmp_path, lines):
    path = tmp_path / "made.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize("model", ["BPR", "SASRec"])
def test_a_split_file_rebuilds_the_split_under_another_seed(model, tiny_config, tmp_path):
    config = {**tiny_config, "MAX_ITEM_LIST_LENGTH": 10}
    path, saved, saved_parts = _manifest(tmp_path, {**config, "seed": 1}, model)
    drawn, _ = _split(model, {**config, "seed": 2})
    assert drawn.split_manifest.sha256 != saved.split_manifest.sha256  # the seed draws the split
    reused, parts = _split(model, {**config, "seed": 2, "split_file": path})
    assert reused.split_manifest.sha256 == saved.split_manifest.sha256
    assert reused.split_info == saved.split_info
    for part, saved_part in zip(parts, saved_parts):
        assert torch.equal(part.cold_roles, saved_part.cold_roles)
        assert torch.equal(part.inter_feat[part.uid_field], saved_part.inter_feat[part.uid_field])
        assert torch.equal(part.inter_feat[part.iid_field], saved_part.inter_feat[part.iid_field])


def test_the_manifest_lists_every_used_row_by_raw_token(tiny_config, tmp_path):
    path, dataset, parts = _manifest(tmp_path, tiny_config)
    manifest = read_manifest(path)
    assert len(manifest.roles) == sum(len(part) for part in parts)
    assert (
        manifest.header["dataset"] == "tiny" and manifest.header["seed"] == dataset.config["seed"]
    )
    assert manifest.users[0].startswith("u") and manifest.items[0].startswith("i")
    report = audit(manifest)
    assert report["rows"]["test_query"] == dataset.split_info["test_inters"]
    assert report["users"] == {
        "meta_train": dataset.split_info["meta_train_users"],
        "valid": dataset.split_info["valid_users"],
        "test": dataset.split_info["test_users"],
    }
    assert report["query_pairs_in_training"] == 0 and report["sha256"] == manifest.sha256


def _late_split(tiny_config, late_data_path, **overrides):
    config = {**tiny_config, "data_path": late_data_path, "user_inter_num_interval": "[0,inf)"}
    config.update(user_split="time_states", split_time=1.5e7, query_size=1)
    config.update(task_size_interval="[2,inf]", **overrides)
    dataset = create_dataset(build_config("BPR", "late", config_dict=config))
    return dataset, dataset.build()


def test_a_split_by_state_round_trips_with_its_known_test_users(
    tiny_config, late_data_path, tmp_path
):
    saved, _ = _late_split(tiny_config, late_data_path, test_state="warm_up")
    warm = saved.split_manifest
    test_users = set(warm.users[warm.roles == Role.TEST_QUERY].tolist())
    assert test_users & set(warm.users[warm.roles == Role.META_TRAIN].tolist())  # known users
    path = str(tmp_path / "warm.split.csv.gz")
    warm.write(path)
    with pytest.raises(DataError, match="is both meta_train and test"):
        audit(read_manifest(path), by_state=False)
    config = {**tiny_config, "data_path": late_data_path, "user_inter_num_interval": "[0,inf)"}
    reused = create_dataset(build_config("BPR", "late", config_dict={**config, "split_file": path}))
    reused.build()  # user_split: random here; the header says the split is by state
    assert reused.split_manifest.sha256 == warm.sha256
    assert audit(reused.split_manifest)["users"] == audit(read_manifest(path))["users"]


def test_item_cold_states_keep_their_test_items_out_of_meta_training(
    tiny_config, late_data_path, tmp_path
):
    dataset, _ = _late_split(tiny_config, late_data_path, test_state="item_cold_testing")
    report = audit(dataset.split_manifest)  # the header names the item-cold state
    assert report["cold_test_query_items"] == report["test_query_items"] > 0
    random_split = read_manifest(_manifest(tmp_path, tiny_config)[0])
    with pytest.raises(DataError, match="item-cold split, but .* test query items are in"):
        audit(random_split, item_cold=True)


def test_cross_domain_manifest_lists_target_rows_and_rebuilds_the_roles(cdr_config, tmp_path):
    def build(config):
        dataset = create_dataset(build_config("TargetMF", config_dict=config))
        return dataset, dataset.build()

    saved, parts = build({**cdr_config, "seed": 1})
    path = str(tmp_path / "cdr.split.csv.gz")
    saved.split_manifest.write(path)
    manifest = read_manifest(path)
    assert len(manifest.roles) == len(saved.inter_feat)  # target rows only, source rows not
    assert set(manifest.header["rows"]) >= {"meta_train", "test_query"}
    assert manifest.header["rows"]["test_support"] == 0
    assert manifest.header["source_dataset"] == "cdr-s"
    reused, _ = build({**cdr_config, "seed": 2, "split_file": path})
    assert torch.equal(reused.user_role, saved.user_role)


def _replace_role(lines, old, new, count=1):
    """``lines`` with the role of the first ``count`` rows of role ``old`` set to ``new``."""
    out = list(lines)
    for number, line in enumerate(out):
        if count and line.endswith("," + old):
            out[number] = line[: -len(old)] + new
            count -= 1
    return out


def _first_user_of(lines, role):
    return next(line.split(",")[0] for line in lines if line.endswith("," + role))


BAD_MANIFESTS = {
    "unknown role": (
        lambda lines: _replace_role(lines, "test_query", "tset_query"),
        DataError,
        r"made.csv line \d+: unknown role 'tset_query'",
    ),
    "pair twice with two roles": (
        lambda lines: [*lines, lines[1].rsplit(",", 1)[0] + ",valid_support"],
        DataError,
        r"made.csv lines 2 and \d+: pair \(u\d+, i\d+\) is both meta_train and valid_support",
    ),
    "user both meta_train and test": (
        lambda lines: _replace_role(lines, "meta_train", "test_query"),
        DataError,
        r"user 'u\d+' is both (meta_train and test|test and meta_train); a user is meta-train",
    ),
    "valid user without query": (
        lambda lines: [
            line
            for line in lines
            if not (
                line.endswith(",valid_query")
                and line.startswith(_first_user_of(lines, "valid_query") + ",")
            )
        ],
        DataError,
        r"valid user 'u\d+' has no query row",
    ),
    "unknown user": (
        lambda lines: [*lines, "nobody,i1,meta_train"],
        DataError,
        r"made.csv line \d+: user 'nobody' is not in dataset tiny after its filters",
    ),
    "another dataset's tokens": (
        lambda lines: [lines[0]] + ["x" + line for line in lines[1:]],
        DataError,
        r"100% of its users are not in dataset tiny .*is it another dataset's manifest\?",
    ),
    "a pair listed more often than its rows": (
        lambda lines: [*lines, lines[1]],
        DataError,
        r"made.csv line \d+: \(u\d+, i\d+\) is listed more often than dataset tiny has rows of it",
    ),
    "no column names": (
        lambda lines: lines[1:],
        DataError,
        r"made.csv line 1: expected the column names user,item,role",
    ),
    "a short line": (
        lambda lines: [*lines[:3], "u1,i1", *lines[3:]],
        DataError,
        r"made.csv line 4: expected 3 fields user,item,role",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_a_bad_user_made_manifest_is_one_line_naming_it(case, tiny_config, tmp_path):
    edit, error, message = BAD_MANIFESTS[case]
    lines = _csv_lines(_manifest(tmp_path, tiny_config)[0])
    path = _user_made(tmp_path, edit(lines))
    with pytest.raises(error, match=message) as raised:
        _split("BPR", {**tiny_config, "split_file": path})
    assert "\n" not in str(raised.value)


def test_a_manifest_of_another_dataset_is_refused_by_its_header(tiny_config, tmp_path):
    path = _manifest(tmp_path, tiny_config)[0]
    text = (
        gzip.open(path, "rt", encoding="utf-8")
        .read()
        .replace('"dataset": "tiny"', '"dataset": "ml-1m"')
    )
    other = tmp_path / "other.split.csv.gz"
    other.write_bytes(gzip.compress(text.encode("utf-8")))
    with pytest.raises(ConfigError, match="is a manifest of dataset 'ml-1m', not of 'tiny'"):
        _split("BPR", {**tiny_config, "split_file": str(other)})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"split_file": "nowhere.csv"}, "split_file=nowhere.csv does not exist"),
        (
            {"split_file": "nowhere.csv", "cold_start_split": False},
            "split_file gives the roles of the cold-start split, and cold_start_split is False",
        ),
    ],
)
def test_a_missing_or_unused_split_file_is_refused(overrides, message, tiny_config):
    with pytest.raises(ColdMetaError, match=message):
        _split("BPR", {**tiny_config, **overrides})


def test_an_imported_split_keeps_its_roles_and_leaves_unlisted_rows_out(tiny_config, tmp_path):
    lines = _csv_lines(_manifest(tmp_path, tiny_config)[0])
    dropped = [line for line in lines if line.endswith(",meta_train")][:5]
    path = _user_made(tmp_path, [line for line in lines if line not in dropped])
    dataset, parts = _split("BPR", {**tiny_config, "seed": 99, "split_file": path})
    assert len(parts[0]) == sum(line.endswith(("meta_train", "support")) for line in lines) - 5
    assert dataset.split_info["unused_inters"] == 5
    assert np.all(read_manifest(path).roles == dataset.split_manifest.roles)


def _rows(*rows):
    users, items, roles = zip(*rows)
    return SplitManifest({}, np.asarray(users), np.asarray(items), np.asarray(roles))


M, VS, VQ = int(Role.META_TRAIN), int(Role.VALID_SUPPORT), int(Role.VALID_QUERY)
TS, TQ = int(Role.TEST_SUPPORT), int(Role.TEST_QUERY)


def test_a_split_by_state_may_test_a_known_user_and_a_sequence_may_repeat_a_pair():
    warm = _rows(("a", "x", M), ("a", "y", TS), ("a", "z", TQ), ("b", "x", M))
    with pytest.raises(DataError, match="user 'a' is both meta_train and test"):
        check_manifest(warm)
    check_manifest(warm, by_state=True)
    assert warm.counts()["users"] == {"meta_train": 1, "valid": 0, "test": 1}
    valid_and_test = _rows(("a", "x", VS), ("a", "y", VQ), ("a", "z", TS), ("a", "w", TQ))
    with pytest.raises(DataError, match="user 'a' is both valid and test"):
        check_manifest(valid_and_test, by_state=True)
    repeat = _rows(("a", "x", TS), ("a", "x", TQ), ("b", "x", M))
    with pytest.raises(DataError, match=r"pair \(a, x\) is both test_support and test_query"):
        check_manifest(repeat)
    check_manifest(repeat, sequential=True)
    sequence = SplitManifest({"sequential": True}, repeat.users, repeat.items, repeat.roles)
    assert audit(sequence)["query_pairs_in_training"] == 1
