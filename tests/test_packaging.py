"""The installed package carries properties/ (a plain, non-editable `pip install .`)."""

import configparser
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    listed = set(parser["options"]["packages"].split())
    on_disk = {
        ".".join(path.parent.relative_to(REPO).parts)
        for path in (REPO / "recbole_coldmeta").rglob("__init__.py")
    }
    assert on_disk | {"recbole_coldmeta.properties"} == listed


def test_wheel_contains_properties(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("recbole_coldmeta-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "recbole_coldmeta/properties/" + path.relative_to(REPO / "properties").as_posix()
        for path in (REPO / "properties").rglob("*")
        if path.is_file()
    }
    assert expected and expected <= names
