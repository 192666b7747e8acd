"""Row policies: missing values, repeated pairs and label scales, on their own and on a split."""

import numpy as np
import pytest
import torch

from recbole_coldmeta.data import create_dataset
from recbole_coldmeta.data.row_checks import declared_rating_range, duplicate_policy, infer_outliers
from recbole_coldmeta.quick_start import build_config
from recbole_coldmeta.utils import ConfigError, DataError
from recbole_coldmeta.utils.enums import Role


@pytest.mark.parametrize(
    "values, outliers",
    [
        ([1, 2, 3, 4, 5, 1000], [1000]),
        ([1, 2, 3, 4, 5, 1000, 2000], [1000, 2000]),
        ([-1000, 1, 2, 3, 4, 5], [-1000]),
        ([1, 2, 3, 4, 5], []),
        ([1, 4, 5], []),
        ([0, 1], []),
        ([1], []),
        (list(np.linspace(0.5, 5.0, 10)), []),
        (list(np.arange(1, 501)) + [50_000], [50_000]),
    ],
)
def test_infer_outliers(values, outliers):
    values = np.array(values, dtype=float)
    assert values[infer_outliers(values)].tolist() == outliers


def _config(tiny_config, model="MeLU", **overrides):
    return build_config(model, "tiny", config_dict={**tiny_config, **overrides})


def test_duplicate_policy_defaults_by_split_and_model_type(tiny_config):
    assert duplicate_policy(_config(tiny_config)) == "first"
    assert duplicate_policy(_config(tiny_config, cold_start_split=False)) == "keep"
    assert duplicate_policy(_config(tiny_config, "SASRec")) == "keep"
    assert duplicate_policy(_config(tiny_config, duplicate_interactions="error")) == "error"
    with pytest.raises(ConfigError, match="duplicate_interactions='twice'"):
        duplicate_policy(_config(tiny_config, duplicate_interactions="twice"))


@pytest.mark.parametrize("value", [[5, 1], [1], "1-5", [1, True]])
def test_declared_rating_range_must_be_low_high(tiny_config, value):
    with pytest.raises(ConfigError, match="rating_range"):
        declared_rating_range(_config(tiny_config, rating_range=value))


def _copy_of_tiny(tiny_data_path, tmp_path, edit):
    """``tiny`` as dataset ``edited`` under ``tmp_path``, its .inter lines passed through
    ``edit``; returns the data_path."""
    folder = tmp_path / "edited"
    folder.mkdir()
    for source in ("user", "item"):
        text = open(f"{tiny_data_path}/tiny/tiny.{source}", encoding="utf-8").read()
        (folder / f"edited.{source}").write_text(text, encoding="utf-8")
    lines = open(f"{tiny_data_path}/tiny/tiny.inter", encoding="utf-8").read().splitlines()
    (folder / "edited.inter").write_text("\n".join(edit(lines)) + "\n", encoding="utf-8")
    return str(tmp_path)


def _build(tiny_config, data_path, model="MeLU", name="edited", **overrides):
    config = build_config(
        model, name, config_dict={**tiny_config, "data_path": data_path, **overrides}
    )
    return create_dataset(config)


def _with_missing_ratings(lines):
    return [lines[0]] + [
        "\t".join(f if i != 2 or n % 4 else "" for i, f in enumerate(line.split("\t")))
        for n, line in enumerate(lines[1:])
    ]


def test_missing_ratings_are_an_error_or_dropped(tiny_config, tiny_data_path, tmp_path):
    data_path = _copy_of_tiny(tiny_data_path, tmp_path, _with_missing_ratings)
    with pytest.raises(DataError, match="line 2, column 'rating': the value is missing"):
        _build(tiny_config, data_path)
    kept = _build(tiny_config, data_path, drop_incomplete_rows=True, user_inter_num_interval=None)
    n_rows = len(open(f"{tiny_data_path}/tiny/tiny.inter").read().splitlines()) - 1
    assert len(kept.inter_feat) == n_rows - len(range(0, n_rows, 4))
    assert not kept.inter_feat["rating"].isna().any()


def _with_repeats(lines):
    # each user's first pair again, after their last row: the first row is support, the
    # repeat would be query
    rows = [line.split("\t") for line in lines[1:]]
    first, last_time = {}, {}
    for row in rows:
        first.setdefault(row[0], row)
        last_time[row[0]] = max(last_time.get(row[0], 0), int(float(row[3])))
    extra = [[u, row[1], row[2], str(last_time[u] + 1)] for u, row in first.items()]
    return [lines[0]] + ["\t".join(row) for row in rows + extra]


def test_repeated_pairs_keep_first_or_stay_on_one_side(tiny_config, tiny_data_path, tmp_path):
    data_path = _copy_of_tiny(tiny_data_path, tmp_path, _with_repeats)
    first = _build(tiny_config, data_path, user_inter_num_interval=None)
    pairs = first.inter_feat[[first.uid_field, first.iid_field]].values
    assert len(np.unique(pairs, axis=0)) == len(pairs)
    with pytest.raises(DataError, match="already form a row on line"):
        _build(tiny_config, data_path, duplicate_interactions="error")
    kept = _build(
        tiny_config, data_path, user_inter_num_interval=None, duplicate_interactions="keep"
    )
    assert len(kept.inter_feat) == len(first.inter_feat) + 60
    train, valid, test = kept.build()
    for query, support_role in ((valid, Role.VALID_SUPPORT), (test, Role.TEST_SUPPORT)):
        support_rows = train.cold_roles == int(support_role)
        support = {
            (int(u), int(i))
            for u, i in zip(
                train.inter_feat[train.uid_field][support_rows],
                train.inter_feat[train.iid_field][support_rows],
            )
        }
        queried = set(zip(query.inter_feat[query.uid_field].tolist(),
                          query.inter_feat[query.iid_field].tolist()))  # fmt: skip
        assert support and queried and not support & queried


def _with_rating(value, line):
    def edit(lines):
        fields = lines[line - 1].split("\t")
        fields[2] = value
        return lines[: line - 1] + ["\t".join(fields)] + lines[line:]

    return edit


def test_label_scale_is_inferred_and_an_outlier_stops_rating_models_only(
    tiny_config, tiny_data_path, tmp_path
):
    plain = _build(tiny_config, tiny_data_path, name="tiny")
    scale = plain.label_scales["rating"]
    assert (scale.low, scale.high, scale.values, scale.outliers) == (1, 5, (1, 2, 3, 4, 5), None)
    data_path = _copy_of_tiny(tiny_data_path, tmp_path, _with_rating("1000", 7))
    odd = _build(tiny_config, data_path, model="BPR")  # ranking: the label only thresholds
    assert odd.label_scales["rating"].outliers == (7, 1000.0, 1)
    assert odd.label_scales["rating"].high == 5
    declared = _build(tiny_config, data_path, model="BPR", rating_range=[1, 1000])
    assert declared.label_scales["rating"].outliers is None
    assert declared.label_scales["rating"].declared


def test_a_model_reading_a_loader_of_the_split_sees_the_scale(tiny_config, tiny_data_path):
    dataset = _build(tiny_config, tiny_data_path, name="tiny")
    train, _, _ = dataset.build()
    assert train.label_scales is dataset.label_scales
    assert torch.equal(train.inter_feat["rating"].unique(), torch.arange(1.0, 6.0))
