"""Checks of RecBole atomic files, run on the raw text before RecBole's loader reads them.

RecBole 1.2.1 (``Dataset._load_feat``) splits the header on ``field_separator`` into
``name:type`` fields and reads the rows with pandas; a malformed file ends there in a pandas or
RecBole traceback, and ``Dataset._fill_nan`` silently fills a missing rating with the column
mean. :func:`check_atomic_file` reads one file once (header, field counts, the values of the
columns that matter) and raises a :class:`~recbole_coldmeta.utils.DataError` naming the file,
the line and the fix at the first problem. The keys it reads are documented in the "Data checks"
block of ``properties/overall.yaml``.
"""

import io
from dataclasses import dataclass, field
from logging import getLogger

import numpy as np
import pandas as pd

from recbole_coldmeta.data.row_checks import (
    check_complete,
    check_duplicates,
    label_columns,
    label_scale,
)
from recbole_coldmeta.utils import ConfigError, DataError

#: RecBole's feature types (``recbole.utils.FeatureType`` values).
FEATURE_TYPES = ("token", "token_seq", "float", "float_seq")
#: Separators a header written with the wrong one is recognised by.
OTHER_SEPARATORS = {",": "comma", ";": "semicolon", "|": "pipe", "\t": "tab", " ": "space"}
EXAMPLE_HEADERS = {
    "inter": "user_id:token, item_id:token, rating:float",
    "user": "user_id:token, age:token",
    "item": "item_id:token, genres:token_seq",
}

logger = getLogger()


@dataclass
class FileReport:
    """What :func:`check_atomic_file` found in a file that passed.

    Attributes:
        rows: data rows.
        incomplete: ``{column: rows}`` of rows with a missing value that ``drop_incomplete_rows``
            drops.
        duplicates: rows repeating an earlier row's (user, item) pair.
        label_scales: ``{field: LabelScale}`` of the label columns
            (:class:`~recbole_coldmeta.data.row_checks.LabelScale`).
    """

    rows: int
    incomplete: dict = field(default_factory=dict)
    duplicates: int = 0
    label_scales: dict = field(default_factory=dict)


def loaded_columns(config, source, columns):
    """The columns of a ``source`` file (``inter``, ``user``, ``item``) RecBole loads, as
    ``Dataset._get_load_and_unload_col`` decides: None when it loads no column of that file."""
    load_col, unload_col = config["load_col"], config["unload_col"]
    if load_col is None or load_col.get(source) == "*":
        chosen = list(columns)
    elif source not in load_col:
        return None
    else:
        chosen = [c for c in columns if c in load_col[source]]
    if unload_col and source in unload_col:
        chosen = [c for c in chosen if c not in unload_col[source]]
    return chosen


def check_atomic_file(path, source, config):
    """Check one atomic file before RecBole loads it.

    Args:
        path (str): the file.
        source (str): ``inter``, ``user`` or ``item``.
        config: the run's Config.

    Returns:
        FileReport: rows, incomplete rows and duplicates (the policies allowed them), label scales.

    Raises:
        DataError: the first problem, as ``<path> line <n>: <what>. Fix: <how>``.
    """
    with open(path, "rb") as f:
        raw = f.read()
    if not raw.strip():
        raise DataError(
            f"{path} is empty. Fix: write a header line of name:type fields separated by "
            f"{_separator_name(config['field_separator'])}s (e.g. {EXAMPLE_HEADERS[source]}) "
            f"and one row per line below it."
        )
    encoding = config["encoding"] or "utf-8"
    text = _decode(path, raw, encoding)
    separator = config["field_separator"]
    names, header = _parse_header(path, text.split("\n", 1)[0].rstrip("\r"), separator)
    row_lines, counts = _rows_and_field_counts(raw, text, separator, encoding)
    if len(row_lines) == 0:
        raise DataError(
            f"{path} has a header but no rows. Fix: add one row per "
            f"{'interaction' if source == 'inter' else source} below the header, or point "
            f"--data_path at the folder that holds the full file."
        )
    _check_field_counts(path, row_lines, counts, separator, len(names))
    loaded = loaded_columns(config, source, names)
    if loaded is None and source == "inter":
        raise DataError(
            f"{path}: load_col has no 'inter' entry ({config['load_col']}), so RecBole loads no "
            f"interaction column. Fix: add inter: [{', '.join(names)}] to load_col."
        )
    if loaded is None:
        return FileReport(rows=len(row_lines))
    _check_required_columns(path, source, config, names, loaded)
    types = dict(zip(names, (field_type.split(":")[1] for field_type in header)))
    checked = [
        c for c in loaded if types[c] in ("float", "float_seq") or c in _key_columns(config, source)
    ]
    frame = _read_columns(text, separator, header, names, types, checked, row_lines, path)
    for column in checked:
        if types[column] == "float_seq":
            _check_number_sequences(path, frame[column], column, row_lines, config)
    report = FileReport(rows=len(row_lines))
    if source != "inter":
        return report
    report.incomplete = check_complete(path, frame, config, row_lines, types)
    report.duplicates = check_duplicates(path, frame, config, row_lines)
    for label in label_columns(config, frame, types):
        report.label_scales[label] = label_scale(
            path, frame[label].to_numpy(), label, config, row_lines
        )
    return report


def _separator_name(separator):
    return OTHER_SEPARATORS.get(separator, repr(separator))


def _decode(path, raw, encoding):
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path} line {line}: byte {raw[error.start : error.start + 1]!r} is not valid "
            f"{encoding}. Fix: save the file as {encoding}, or set encoding: to the file's "
            f"encoding (e.g. --encoding=latin-1)."
        ) from None
    except LookupError:
        raise ConfigError(
            f"encoding={encoding!r} is not a text encoding Python knows; use e.g. utf-8 or latin-1."
        ) from None
    if text.startswith("\ufeff"):
        raise DataError(
            f"{path} line 1 starts with a byte-order mark, which RecBole reads as part of the "
            f"first column's name. Fix: save the file as UTF-8 without BOM."
        )
    return text


def _parse_header(path, header_line, separator):
    """``(names, fields)`` of the header: RecBole's ``name:type`` fields."""
    fields = header_line.split(separator)
    if len(fields) == 1:
        for other, name in OTHER_SEPARATORS.items():
            if other != separator and other in header_line:
                raise DataError(
                    f"{path} line 1: the header has no {_separator_name(separator)} "
                    f"(field_separator={separator!r}) but {name}s: the file looks "
                    f"{name}-separated. Fix: separate the fields by "
                    f"{_separator_name(separator)}s, or set field_separator: {other!r} "
                    f"(e.g. --field_separator='{other}')."
                )
    names = []
    for field_type in fields:
        parts = field_type.split(":")
        if len(parts) != 2 or not parts[0]:
            raise DataError(
                f"{path} line 1: header field {field_type!r} is not name:type. Fix: write each "
                f"header field as name:type with type one of {', '.join(FEATURE_TYPES)} "
                f"(e.g. user_id:token, rating:float)."
            )
        if parts[1] not in FEATURE_TYPES:
            raise DataError(
                f"{path} line 1: column {parts[0]!r} has type {parts[1]!r}, which RecBole does "
                f"not know. Fix: use one of {', '.join(FEATURE_TYPES)}."
            )
        if parts[0] in names:
            raise DataError(
                f"{path} line 1: column {parts[0]!r} appears twice. Fix: give each column its "
                f"own name."
            )
        names.append(parts[0])
    return names, fields


def _rows_and_field_counts(raw, text, separator, encoding):
    """``(row_lines, counts)``: the 1-based line number of each data row (blank lines, which
    pandas skips, are no rows) and its number of fields.

    Counted on the bytes with numpy when the separator and the newline are one byte each in
    ``encoding`` (UTF-8, Latin-1: such bytes never occur inside a multi-byte character),
    else line by line.
    """
    separator_bytes = separator.encode(encoding)
    if len(separator_bytes) == 1 and "\n".encode(encoding) == b"\n":
        data = np.frombuffer(raw, dtype=np.uint8)
        newlines = np.flatnonzero(data == ord("\n"))
        starts = np.r_[0, newlines + 1]
        ends = np.r_[newlines, len(data)]
        if starts[-1] == len(data):  # the file ends with a newline
            starts, ends = starts[:-1], ends[:-1]
        separators = np.flatnonzero(data == separator_bytes[0])
        counts = np.searchsorted(separators, ends) - np.searchsorted(separators, starts) + 1
        length = ends - starts
        last = np.maximum(ends - 1, 0)
        blank = (length == 0) | ((length == 1) & (data[last] == ord("\r")))
    else:
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        counts = np.array([line.count(separator) for line in lines]) + 1
        blank = np.array([line in ("", "\r") for line in lines])
    rows = np.flatnonzero(~blank[1:]) + 1
    return rows + 1, counts[rows]


def _check_field_counts(path, row_lines, counts, separator, n_fields):
    wrong = np.flatnonzero(counts != n_fields)
    if len(wrong):
        first = wrong[0]
        raise DataError(
            f"{path} line {row_lines[first]} has {counts[first]} field(s), the header has "
            f"{n_fields} ({len(wrong)} line(s) differ). Fix: give every row one value per "
            f"header column, separated by {_separator_name(separator)}s (an empty value "
            f"still needs its separator)."
        )


def _key_columns(config, source):
    """The columns whose values :func:`check_atomic_file` reads besides float columns."""
    uid, iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    if source == "user":
        return {uid}
    if source == "item":
        return {iid}
    return {uid, iid, config["RATING_FIELD"], config["LABEL_FIELD"], config["TIME_FIELD"]}


def _check_required_columns(path, source, config, names, loaded):
    required = {
        "inter": ("USER_ID_FIELD", "ITEM_ID_FIELD"),
        "user": ("USER_ID_FIELD",),
        "item": ("ITEM_ID_FIELD",),
    }
    for key in required[source]:
        column = config[key]
        if column is None:
            continue
        if column not in names:
            raise DataError(
                f"{path} line 1: no column {column!r} ({key}={column}); the header has "
                f"{', '.join(names)}. Fix: name the column {column}:token in the header, or set "
                f"{key} to the file's column (e.g. --{key}={names[0]})."
            )
        if column not in loaded:
            raise DataError(
                f"{path}: column {column!r} ({key}) is not loaded: load_col['{source}'] is "
                f"{config['load_col'][source]}. Fix: add {column} to load_col['{source}']."
            )
    wanted = (config["load_col"] or {}).get(source)
    if isinstance(wanted, list | tuple):
        absent = [c for c in wanted if c not in names]
        if absent:
            raise DataError(
                f"{path} line 1: load_col['{source}'] names {', '.join(absent)}, which the "
                f"header lacks (it has {', '.join(names)}). Fix: add the column(s) to the file "
                f"or remove them from load_col['{source}']."
            )


def _read_columns(text, separator, header, names, types, columns, row_lines, path):
    """The ``columns``: float columns as numbers, the others as strings (missing values NaN,
    as RecBole's pandas reads them); DataError naming the line of a float that is no number."""
    if not columns:
        return pd.DataFrame(index=range(len(row_lines)))
    floats = [c for c in columns if types[c] == "float"]

    def read(float_dtype):
        dtype = {header[names.index(c)]: float_dtype if c in floats else str for c in columns}
        frame = pd.read_csv(
            io.StringIO(text),
            sep=separator,
            header=0,
            usecols=list(dtype),
            dtype=dtype,
            engine="c" if len(separator) == 1 else "python",
        )
        frame.columns = [names[header.index(c)] for c in frame.columns]
        return frame

    try:
        frame = read(np.float64)
    except ValueError:  # a float column holds a word: find it
        frame = read(str)
        for column in floats:
            _check_numbers(path, frame[column], column, row_lines)
        raise
    if len(frame) != len(row_lines):
        raise DataError(
            f"{path}: pandas reads {len(frame)} rows where the file has {len(row_lines)} lines, "
            f'so a quote character (") joins lines. Fix: remove the unbalanced quote.'
        )
    return frame


def _check_numbers(path, column_values, column, row_lines):
    numbers = pd.to_numeric(column_values, errors="coerce")
    bad = np.flatnonzero(numbers.isna().to_numpy() & column_values.notna().to_numpy())
    if len(bad):
        raise DataError(
            f"{path} line {row_lines[bad[0]]}, column {column!r}: {column_values.iloc[bad[0]]!r} "
            f"is not a number ({len(bad)} such value(s)). Fix: write a number there, or declare "
            f"the column {column}:token if it holds categories."
        )


def _check_number_sequences(path, column_values, column, row_lines, config):
    separator = config["seq_separator"]
    for position, value in enumerate(column_values):
        if isinstance(value, str):
            for part in filter(None, value.split(separator)):
                try:
                    float(part)
                except ValueError:
                    raise DataError(
                        f"{path} line {row_lines[position]}, column {column!r}: {part!r} in "
                        f"{value!r} is not a number. Fix: write numbers separated by "
                        f"{separator!r} (seq_separator), or declare the column "
                        f"{column}:token_seq."
                    ) from None
