"""Output files are written whole or not at all, and checked writable before any work."""

import pytest

from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.atomic import (
    atomic_path,
    atomic_write_text,
    check_writable_dir,
    check_writable_file,
)


def test_a_write_that_dies_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_text(target, "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as temporary:
            with open(temporary, "w") as f:
                f.write("half of the new")
            raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_complete_write_replaces_the_file(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new" and len(list(tmp_path.iterdir())) == 1


def test_nothing_written_means_nothing_renamed(tmp_path):
    with atomic_path(tmp_path / "r.json"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_checks_create_missing_folders_and_name_what_blocks_them(tmp_path):
    check_writable_file(tmp_path / "a" / "b" / "r.json", "--result_file")
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=f"{blocker} is a file, not a folder"):
        check_writable_dir(blocker / "saved", "checkpoint_dir")
    with pytest.raises(ConfigError, match="is a folder"):
        check_writable_file(tmp_path, "--result_file")
