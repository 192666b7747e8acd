"""Per-user rows: the support size and query-item popularity of each user, and old files."""

import gzip

import torch

from recbole_coldmeta.data import create_dataset, data_preparation
from recbole_coldmeta.quick_start import build_config, run_coldmeta
from recbole_coldmeta.quick_start.user_results import read_user_results, write_user_results


def test_rows_carry_each_users_support_size_and_query_popularity(tiny_config, tmp_path):
    result = run_coldmeta("UserItemBias", "tiny", config_dict={**tiny_config, "user_results": True})
    rows = result["user_results"]
    # the same split, by hand: the test users' support rows and their query items' counts
    config = build_config("UserItemBias", "tiny", config_dict=tiny_config)
    train, valid, test = (
        loader.dataset for loader in data_preparation(config, create_dataset(config))
    )
    counts = torch.bincount(train.inter_feat["item_id"], minlength=train.item_num).double()
    for row in rows:
        part = test if row["split"] == "test" else valid
        user = part.token2id("user_id", row["user"])
        in_train = int((train.inter_feat["user_id"] == user).sum())
        assert row["n_support"] == in_train > 0  # a cold user's train rows are their support
        items = part.inter_feat["item_id"][part.inter_feat["user_id"] == user]
        assert row["query_popularity"] == counts[items].mean().item()
    path = tmp_path / "u.csv.gz"
    write_user_results(str(path), rows)
    assert read_user_results(str(path)) == rows


def test_files_written_before_the_support_columns_still_read(tmp_path):
    path = tmp_path / "old.users.csv.gz"
    path.write_bytes(gzip.compress(b"split,state,user,n_rows,mae\ntest,,u1,3,0.5\n"))
    assert read_user_results(str(path)) == [
        {"split": "test", "state": "", "user": "u1", "n_rows": 3, "mae": 0.5}
    ]
