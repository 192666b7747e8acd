"""Bad data inputs: each stops with exit code 2 and one ``error:`` line naming the file (and the
line where one applies), before any training and without a traceback.

Each case copies the synthetic ``tiny`` dataset (``tiny_data_path``) as ``broken`` under
``tmp_path``, breaks one thing and runs ``run_recbole_coldmeta.py``'s ``main`` in-process.
"""

import shutil
from pathlib import Path

import pytest

from recbole_coldmeta.quick_start.cli import main
from recbole_coldmeta.trainer.trainer import ColdMetaTrainerMixin

NAME = "broken"


def _lines(text):
    return text.split("\n")


def _set_line(number, make):
    """A breaker that replaces line ``number`` (1-based) by ``make(old_line)``."""

    def breaker(text):
        lines = _lines(text)
        lines[number - 1] = make(lines[number - 1])
        return "\n".join(lines)

    return breaker


def _set_field(number, column, value):
    def make(line):
        fields = line.split("\t")
        fields[column] = value
        return "\t".join(fields)

    return _set_line(number, make)


def _every_third_rating_nan(text):
    lines = _lines(text)
    for number in range(1, len(lines), 3):
        if lines[number]:
            fields = lines[number].split("\t")
            fields[2] = "nan"
            lines[number] = "\t".join(fields)
    return "\n".join(lines)


def _duplicate_line(number):
    def breaker(text):
        lines = _lines(text)
        lines.insert(number, lines[number - 1])
        return "\n".join(lines)

    return breaker


#: (id, file suffix, breaker of the text (or bytes, for a bytes breaker), extra flags, words the
#: error line holds, the line it names or None).
CASES = [
    ("zero-byte inter", "inter", lambda text: "", [], "is empty", None),
    ("blank lines only", "inter", lambda text: "\n\n", [], "is empty", None),
    (
        "header without types",
        "inter",
        _set_line(1, lambda line: "user_id\titem_id\trating\ttimestamp"),
        [],
        "is not name:type",
        1,
    ),
    (
        "unknown type",
        "inter",
        _set_line(1, lambda line: line.replace("rating:float", "rating:int")),
        [],
        "type 'int'",
        1,
    ),
    (
        "duplicate column",
        "inter",
        _set_line(1, lambda line: line.replace("timestamp:float", "rating:float")),
        [],
        "appears twice",
        1,
    ),
    ("comma-separated", "inter", lambda text: text.replace("\t", ","), [], "comma", 1),
    ("semicolon-separated", "inter", lambda text: text.replace("\t", ";"), [], "semicolon", 1),
    ("byte-order mark", "inter", lambda text: "\ufeff" + text, [], "byte-order mark", 1),
    ("undecodable bytes", "inter", b"\xff", [], "not valid utf-8", 5),
    (
        "missing user_id column",
        "inter",
        _set_line(1, lambda line: line.replace("user_id:", "uid:")),
        [],
        "no column 'user_id'",
        1,
    ),
    (
        "USER_ID_FIELD names an absent column",
        "inter",
        lambda text: text,
        ["--USER_ID_FIELD=customer"],
        "no column 'customer'",
        1,
    ),
    (
        "header only",
        "inter",
        lambda text: _lines(text)[0] + "\n",
        [],
        "has a header but no rows",
        None,
    ),
    ("too many fields", "inter", _set_line(7, lambda line: line + "\t9"), [], "has 5 field(s)", 7),
    (
        "too few fields",
        "inter",
        _set_line(9, lambda line: line.rsplit("\t", 1)[0]),
        [],
        "has 3 field(s)",
        9,
    ),
    ("word in a float column", "inter", _set_field(4, 2, "five"), [], "'five' is not a number", 4),
    ("word in the time column", "inter", _set_field(6, 3, "soon"), [], "column 'timestamp'", 6),
    ("missing rating", "inter", _set_field(6, 2, ""), [], "the value is missing", 6),
    ("a third of ratings nan", "inter", _every_third_rating_nan, [], "rating", 2),
    ("missing user id", "inter", _set_field(3, 0, ""), [], "column 'user_id'", 3),
    ("negative rating", "inter", _set_field(8, 2, "-2"), [], "is negative", 8),
    ("rating 1000 off the scale", "inter", _set_field(10, 2, "1000"), [], "off the scale", 10),
    (
        "rating outside the declared range",
        "inter",
        _set_field(11, 2, "6"),
        ["--rating_range=[1,5]"],
        "outside rating_range",
        11,
    ),
    (
        "repeated pair under duplicate_interactions=error",
        "inter",
        _duplicate_line(12),
        ["--duplicate_interactions=error"],
        "already form a row on line 12",
        13,
    ),
    (
        "load_col names a column the file lacks",
        "inter",
        lambda text: text,
        ["--load_col={'inter': ['user_id', 'item_id', 'rating', 'stars']}"],
        "names stars, which the header lacks",
        1,
    ),
    (
        "load_col without an inter entry",
        "inter",
        lambda text: text,
        ["--load_col={'user': ['user_id']}"],
        "load_col has no 'inter' entry",
        None,
    ),
    ("zero-byte user file", "user", lambda text: "", [], "is empty", None),
    (
        "user file without user_id",
        "user",
        _set_line(1, lambda line: line.replace("user_id:", "uid:")),
        [],
        "no column 'user_id'",
        1,
    ),
    (
        "item header without types",
        "item",
        _set_line(1, lambda line: line.replace(":token_seq", "")),
        [],
        "is not name:type",
        1,
    ),
    (
        "item file with a short row",
        "item",
        _set_line(5, lambda line: "i4"),
        [],
        "has 1 field(s)",
        5,
    ),
]


def _break(data_path, suffix, breaker):
    path = Path(data_path) / NAME / f"{NAME}.{suffix}"
    if isinstance(breaker, bytes):
        lines = path.read_bytes().split(b"\n")
        lines[4] = lines[4] + breaker
        path.write_bytes(b"\n".join(lines))
    else:
        path.write_text(breaker(path.read_text(encoding="utf-8")), encoding="utf-8")
    return path


@pytest.fixture
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(ColdMetaTrainerMixin, "fit", refuse, raising=False)


@pytest.mark.parametrize(
    "suffix, breaker, flags, expected, line",
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_data_gives_one_clear_line(
    suffix, breaker, flags, expected, line, tiny_data_path, tmp_path, monkeypatch, capsys,
    no_training,
):  # fmt: skip
    monkeypatch.chdir(tmp_path)
    data_path = tmp_path / "data"
    target = data_path / NAME
    target.mkdir(parents=True)
    for source in ("inter", "user", "item"):
        shutil.copy(Path(tiny_data_path) / "tiny" / f"tiny.{source}", target / f"{NAME}.{source}")
    path = _break(data_path, suffix, breaker)
    if not any(flag.startswith("--load_col=") for flag in flags):
        flags = [*flags, "--load_col=None"]  # every column of the files
    code = main(
        [
            "--model=MeLU",
            f"--dataset={NAME}",
            f"--data_path={data_path}",
            "--epochs=1",
            "--show_progress=False",
            f"--checkpoint_dir={tmp_path / 'saved'}",
            *flags,
        ]
    )
    captured = capsys.readouterr()
    errors = [row for row in captured.err.splitlines() if row.startswith("error: ")]
    assert code == 2, captured.err[-2000:]
    assert len(errors) == 1, errors
    assert "Traceback" not in captured.out + captured.err
    assert str(path) in errors[0]
    assert expected in errors[0]
    if line is not None:
        assert f"line {line}" in errors[0]
    assert "Fix:" in errors[0]
