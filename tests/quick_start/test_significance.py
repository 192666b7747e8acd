"""Paired statistics on synthetic numbers: Δ, bootstrap interval, Wilcoxon p, Holm, marks."""

import math

import numpy as np
import pytest

from recbole_coldmeta.quick_start.significance import (
    Paired,
    compare,
    correct,
    holm,
    mark,
    paired_table,
    paired_values,
)


def _users(values, n_rows=None, column="mae"):
    n_rows = n_rows if n_rows is not None else [1] * len(values)
    return [
        {"user": f"u{i}", "n_rows": n, column: float(v), "mse": float(v) ** 2}
        for i, (v, n) in enumerate(zip(values, n_rows))
    ]


def _pairs(model, reference, metric="mae", seed=1):
    return {seed: paired_values(_users(model), _users(reference), metric)}


RNG = np.random.default_rng(0)
BASE = RNG.uniform(0.5, 1.5, size=80)


def test_identical_models_give_zero_delta_p_one_and_no_mark():
    result = compare(_pairs(BASE, BASE), "mae", resamples=200)
    for paired in result.values():
        assert paired.delta == 0 and paired.low == 0 and paired.high == 0 and paired.p == 1.0
    correct({"same": result})
    assert result["pooled"].p_holm == 1.0 and mark(result["pooled"], "mae") == ""


@pytest.mark.parametrize("metric, shift, expected", [
    ("mae", -0.1, " ▲"), ("mae", 0.1, " ▼"), ("ndcg@10", 0.1, " ▲"), ("ndcg@10", -0.1, " ▼"),
])  # fmt: skip
def test_a_clear_shift_is_marked_in_the_right_direction(metric, shift, expected):
    noise = RNG.normal(0, 0.01, size=len(BASE))
    model, reference = _users(BASE + shift + noise, column=metric), _users(BASE, column=metric)
    result = compare({7: paired_values(model, reference, metric)}, metric, resamples=500)
    pooled = result["pooled"]
    assert math.isclose(pooled.delta, float(np.mean(shift + noise)))
    assert pooled.low < pooled.delta < pooled.high and (pooled.low > 0) == (shift > 0)
    assert pooled.p < 1e-6 and pooled.users == len(BASE)
    correct({"shifted": result})
    assert mark(pooled, metric) == expected


def test_pooled_over_seeds_is_the_mean_of_the_seeds_and_counts_every_user():
    pairs = {1: paired_values(_users(BASE + 0.1), _users(BASE), "mae")}
    pairs[2] = paired_values(_users(BASE[:50] + 0.3), _users(BASE[:50]), "mae")
    result = compare(pairs, "mae", resamples=300)
    assert math.isclose(result["pooled"].delta, (0.1 + 0.3) / 2)
    assert result["pooled"].users == 130 and result[2].users == 50
    assert result[1].low == pytest.approx(0.1) and result[2].high == pytest.approx(0.3)


def test_rmse_is_paired_on_squared_errors_and_its_delta_is_that_of_the_pooled_rows():
    model, reference = [1.0, 3.0], [2.0, 2.0]
    n_rows = [1, 3]
    pairs = paired_values(_users(model, n_rows), _users(reference, n_rows), "rmse")
    assert pairs[0].tolist() == [1.0, 9.0]  # the users' MSE
    result = compare({1: pairs}, "rmse", resamples=100)
    expected = math.sqrt((1 * 1 + 3 * 9) / 4) - math.sqrt((1 * 4 + 3 * 4) / 4)
    assert math.isclose(result[1].delta, expected)


def test_the_bootstrap_is_reproducible_under_the_seed():
    model = BASE + RNG.normal(0, 0.2, size=len(BASE))
    first = compare(_pairs(model, BASE, seed=3), "mae", resamples=400)
    again = compare(_pairs(model, BASE, seed=3), "mae", resamples=400)
    other = compare(_pairs(model, BASE, seed=4), "mae", resamples=400)
    assert (first[3].low, first[3].high) == (again[3].low, again[3].high)
    assert (first[3].low, first[3].high) != (other[4].low, other[4].high)
    assert first[3].delta == other[4].delta and first[3].p == other[4].p


def test_holm_matches_a_hand_computation():
    p = [0.01, 0.04, 0.03, 0.2, math.nan]
    # sorted: 0.01*4 = 0.04, 0.03*3 = 0.09, 0.04*2 = 0.08 -> 0.09 (monotone), 0.2*1 = 0.2
    assert holm(p)[:4] == pytest.approx([0.04, 0.09, 0.09, 0.2])
    assert math.isnan(holm(p)[4])
    assert holm([0.5, 0.6]) == [1.0, 1.0]


def test_users_missing_from_either_model_or_without_a_value_are_not_paired():
    model = _users([0.5, 0.6, math.nan], column="query_ndcg@3")
    reference = _users([0.4, 0.2, 0.1, 0.9], column="query_ndcg@3")
    x, y, _ = paired_values(model, reference, "query_ndcg@3")
    assert x.tolist() == [0.5, 0.6] and y.tolist() == [0.4, 0.2]
    assert paired_values(model, reference, "recall@10") is None
    assert paired_values(model, [], "query_ndcg@3") is None


def test_paired_table_lists_pooled_then_seeds():
    paired = {"pooled": Paired(-0.02, -0.03, -0.01, 0.001, 20, 0.002), 1: Paired(-0.02, -0.03,
              -0.01, 0.01, 10, 0.01)}  # fmt: skip
    lines = paired_table({"MeLU": {"mae": paired}}, ["mae", "rmse"], "UserItemBias")
    assert lines[0].startswith("Δ vs UserItemBias [95% CI], p (Holm)")
    assert lines[4] == "| MeLU | pooled | 20 | -0.0200 [-0.0300, -0.0100], p=0.002 ▲ | — |"
    assert lines[5].startswith("| MeLU | 1 | 10 |")
