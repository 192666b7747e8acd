"""Implicit feedback on data with ids only: no rating or label column is needed (every row is a
positive); rating models and rating metrics on such data are one clear error each, and so is a
label that marks rows as negatives."""

import shutil

import pytest

from recbole_coldmeta.quick_start import run_coldmeta
from recbole_coldmeta.utils import ColdMetaError, properties_dir

RANKING = [str(properties_dir() / "protocol" / "ranking.yaml")]
IDS_ONLY = {
    "load_col": {"inter": ["user_id", "item_id"]},
    "RATING_FIELD": None,
    "TIME_FIELD": None,
    "support_mode": "random",
    "support_size": 5,
}


def _ids_only(tiny_config, **overrides):
    return {**tiny_config, **IDS_ONLY, "epochs": 1, **overrides}


@pytest.mark.parametrize("model", ["MeLU", "TaNP", "MAMO"])
def test_implicit_meta_learners_run_on_ids_only_data_without_a_label_column(tiny_config, model):
    config = _ids_only(tiny_config, meta_feedback="implicit", task_neg_sample_num=2)
    result = run_coldmeta(model, "tiny", RANKING, config)
    assert {"ndcg@10", "recall@10"} <= set(result["test_result"])
    assert result["split"]["test_users"] > 0
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0


def test_ranking_baselines_run_on_the_same_ids_only_split(tiny_config):
    meta = run_coldmeta("TaNP", "tiny", RANKING, _ids_only(tiny_config, meta_feedback="implicit"))
    pop = run_coldmeta("Pop", "tiny", RANKING, _ids_only(tiny_config))
    assert pop["split_sha256"] == meta["split_sha256"]  # one split for both


@pytest.mark.parametrize(
    "model, overrides, message",
    [
        ("MeLU", {}, "for data without ratings set meta_feedback: implicit"),
        ("CCML", {"meta_feedback": "implicit"}, "meta_feedback=implicit is MeLU's"),
        ("UserItemBias", {}, "is not a loaded interaction field"),
    ],
)
def test_rating_models_on_ids_only_data_are_one_clear_error(tiny_config, model, overrides, message):
    config = _ids_only(tiny_config, **overrides)
    config_files = RANKING if overrides else None
    with pytest.raises(ColdMetaError, match=message.replace("(", r"\(")):
        run_coldmeta(model, "tiny", config_files, config)


def test_a_label_that_marks_negatives_stops_an_implicit_run(tiny_config, tmp_path):
    shutil.copytree(f"{tiny_config['data_path']}/tiny", tmp_path / "clicks" / "clicks")
    inter = tmp_path / "clicks" / "clicks" / "clicks.inter"
    (tmp_path / "clicks" / "clicks" / "tiny.inter").rename(inter)
    lines = inter.read_text(encoding="utf-8").splitlines()
    rows = [lines[0] + "\tclick:float"] + [f"{x}\t{i % 2}" for i, x in enumerate(lines[1:])]
    inter.write_text("\n".join(rows) + "\n", encoding="utf-8")
    for suffix in ("user", "item"):
        (tmp_path / "clicks" / "clicks" / f"tiny.{suffix}").rename(
            tmp_path / "clicks" / "clicks" / f"clicks.{suffix}"
        )
    config = {
        **tiny_config,
        "data_path": str(tmp_path / "clicks"),
        "LABEL_FIELD": "click",
        "meta_feedback": "implicit",
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp", "click"]},
    }
    with pytest.raises(ColdMetaError, match="rows have click <= 0 \\(negatives\\?\\)"):
        run_coldmeta("TaNP", "clicks", RANKING, config)
    kept = {**config, "val_interval": {"click": "(0,inf)"}}
    assert "ndcg@10" in run_coldmeta("TaNP", "clicks", RANKING, kept)["test_result"]
