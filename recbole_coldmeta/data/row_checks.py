"""What the rows of an ``.inter`` file hold: missing values, repeated (user, item) pairs and the
scale of its label columns, each under the policy of a "Data checks" key of
``properties/overall.yaml`` (``drop_incomplete_rows``, ``duplicate_interactions``,
``rating_range``). :func:`~recbole_coldmeta.data.atomic_files.check_atomic_file` calls these on
the columns it has read, with the line number of each row.
"""

import os
from dataclasses import dataclass
from logging import getLogger

import numpy as np
import pandas as pd
from recbole.utils import ModelType

from recbole_coldmeta.utils import ConfigError, DataError

DUPLICATE_POLICIES = ("first", "last", "keep", "error")
#: A label with at most this many distinct values has its values listed in the log.
FEW_VALUES = 20
#: The largest gap between a label's distinct values marks outliers only when it is at least
#: this many times the median gap (and wider than the main body of values).
OUTLIER_GAP_FACTOR = 10

logger = getLogger()


@dataclass
class LabelScale:
    """The values of one label column of an ``.inter`` file.

    Attributes:
        path: the file.
        field: the column.
        low, high: the scale: ``rating_range`` when declared, else the smallest and largest
            value in the file, outliers excluded.
        declared: ``rating_range`` declared the scale.
        values: the distinct values, when there are at most :data:`FEW_VALUES`.
        outliers: ``(line, value, count)``: the first value beyond the largest gap of an
            inferred scale (see :func:`infer_outliers`) and how many rows hold such values; or
            None.
    """

    path: str
    field: str
    low: float
    high: float
    declared: bool
    values: tuple | None = None
    outliers: tuple | None = None

    def describe(self) -> str:
        listed = f" (values {', '.join(f'{v:g}' for v in self.values)})" if self.values else ""
        source = "declared by rating_range" if self.declared else "inferred from the data"
        return f"{self.low:g} to {self.high:g}{listed}, {source}"


def check_complete(path, frame, config, row_lines, types):
    """``{column: rows}`` of rows missing a user, item, label or time value, when
    ``drop_incomplete_rows`` drops them; else DataError.

    NOTE: the rows are dropped by RecBole's own filters (missing ids by
    ``_filter_nan_user_or_item``, missing float values by the ``val_interval`` that
    :func:`~recbole_coldmeta.data.files.check_dataset_files` adds), before its interaction-count
    filters; a missing token that is not an id has no such filter and stays an error.
    """
    columns = [
        config[key]
        for key in ("USER_ID_FIELD", "ITEM_ID_FIELD", "RATING_FIELD", "LABEL_FIELD", "TIME_FIELD")
        if config[key] in frame
    ]
    incomplete = {}
    for column in dict.fromkeys(columns):
        missing = int(pd.isna(frame[column]).sum())
        if missing:
            incomplete[column] = missing
    if not incomplete:
        return incomplete
    any_missing = pd.isna(frame[list(incomplete)]).to_numpy().any(axis=1)
    if not config["drop_incomplete_rows"]:
        first = int(np.flatnonzero(any_missing)[0])
        column = next(c for c in incomplete if pd.isna(frame[c].iloc[first]))
        filled = " (RecBole would fill it with the column mean)" if types[column] == "float" else ""
        raise DataError(
            f"{path} line {row_lines[first]}, column {column!r}: the value is missing{filled} "
            f"({int(any_missing.sum())} row(s) lack a value in {', '.join(incomplete)}). Fix: "
            f"fill in the values, or set drop_incomplete_rows: True to drop those rows."
        )
    ids = (config["USER_ID_FIELD"], config["ITEM_ID_FIELD"])
    undroppable = [c for c in incomplete if c not in ids and types[c] != "float"]
    if undroppable:
        first = int(np.flatnonzero(pd.isna(frame[undroppable[0]]).to_numpy())[0])
        raise DataError(
            f"{path} line {row_lines[first]}, column {undroppable[0]!r}: the value is missing, "
            f"and drop_incomplete_rows drops rows with a missing id or float value only. Fix: "
            f"fill in the values."
        )
    if any_missing.all():
        raise DataError(
            f"{path}: every row lacks a value in {', '.join(incomplete)}, so "
            f"drop_incomplete_rows: True leaves nothing. Fix: fill in the values."
        )
    logger.warning(
        f"{path}: dropping {int(any_missing.sum())} row(s) with a missing value "
        f"({', '.join(f'{c}: {n}' for c, n in incomplete.items())}; drop_incomplete_rows: True)"
    )
    return incomplete


def duplicate_policy(config):
    """The ``duplicate_interactions`` policy in force: the key's value, or by default ``first``
    on the cold-start split of non-sequential models and ``keep`` elsewhere.

    NOTE: in a sequence (``ModelType.SEQUENTIAL``) a repeated (user, item) pair is a new event,
    e.g. a repeat purchase that the next-item task may predict, not a duplicated rating; and
    RecBole's own splits (``cold_start_split: False``) leave repeats to its ``rm_dup_inter``.
    """
    policy = config["duplicate_interactions"]
    if policy is None:
        sequential = config["MODEL_TYPE"] == ModelType.SEQUENTIAL
        return "first" if config["cold_start_split"] and not sequential else "keep"
    if policy not in DUPLICATE_POLICIES:
        raise ConfigError(
            f"duplicate_interactions={policy!r} is not one of {', '.join(DUPLICATE_POLICIES)} "
            f"(or None: first on the cold-start split of non-sequential models, else keep)."
        )
    return policy


def check_duplicates(path, frame, config, row_lines):
    """Rows repeating an earlier (user, item) pair; DataError under ``duplicate_interactions:
    error``."""
    policy = duplicate_policy(config)
    pair = [config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]]
    repeated = frame.duplicated(pair).to_numpy()
    count = int(repeated.sum())
    if count and policy == "error":
        row = int(np.flatnonzero(repeated)[0])
        user, item = frame[pair].iloc[row]
        first = int(
            np.flatnonzero(((frame[pair[0]] == user) & (frame[pair[1]] == item)).to_numpy())[0]
        )
        raise DataError(
            f"{path} line {row_lines[row]}: user {user!r} and item {item!r} already form a row "
            f"on line {row_lines[first]} ({count} repeated pair(s)). Fix: remove the repeats, or "
            f"set duplicate_interactions to first, last or keep."
        )
    if count:
        kept = {
            "first": "keeping each pair's first row by time",
            "last": "keeping each pair's last row by time",
            "keep": "keeping every row (on the cold-start split of a non-sequential model, a "
            "valid/test user's rows of one pair all on the side of its first row)",
        }[policy]
        logger.warning(
            f"{path}: {count} row(s) repeat an earlier (user, item) pair; {kept} "
            f"(duplicate_interactions: {config['duplicate_interactions']})"
        )
    return count


def label_columns(config, frame, types):
    """The loaded float columns that are ``RATING_FIELD`` or ``LABEL_FIELD``."""
    fields = (config["LABEL_FIELD"], config["RATING_FIELD"])
    return [c for c in dict.fromkeys(fields) if c in frame and types[c] == "float"]


def declared_rating_range(config):
    """``rating_range`` as ``(low, high)``, or None when undeclared."""
    value = config["rating_range"]
    if value is None:
        return None
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not value[0] < value[1]
    ):
        raise ConfigError(
            f"rating_range={value!r} must be [low, high] with low < high, e.g. [1, 5]."
        )
    return float(value[0]), float(value[1])


def infer_outliers(values):
    """Indices of the outliers among the distinct ``values`` (sorted, ascending).

    The values beyond the largest gap between neighbours are outliers when the gap is at least
    :data:`OUTLIER_GAP_FACTOR` times the median gap and wider than the span of the main body
    (the side holding more distinct values); the body is then searched again, so
    ``1 2 3 4 5 1000 2000`` -> ``1000, 2000``; ``1 4 5``, ``0 1`` and any even spread -> none.
    """
    start, stop = 0, len(values)  # the body is values[start:stop]
    while stop - start >= 3:
        body = values[start:stop]
        gaps = np.diff(body)
        split = start + int(np.argmax(gaps)) + 1  # first index above the largest gap
        low, high = values[start:split], values[split:stop]
        kept = low if len(low) >= len(high) else high
        gap = values[split] - values[split - 1]
        if gap < OUTLIER_GAP_FACTOR * np.median(gaps) or gap <= np.ptp(kept):
            break
        start, stop = (start, split) if kept is low else (split, stop)
    return np.r_[np.arange(start), np.arange(stop, len(values))].astype(np.int64)


def label_scale(path, values, label, config, row_lines):
    """The scale of one label column; DataError for a value outside a declared ``rating_range``
    or a negative label under QueryNDCG."""
    declared = declared_rating_range(config)
    present = ~np.isnan(values)
    if declared is not None:
        outside = np.flatnonzero(present & ((values < declared[0]) | (values > declared[1])))
        if len(outside):
            raise DataError(
                f"{path} line {row_lines[outside[0]]}, column {label!r}: {values[outside[0]]:g} "
                f"is outside rating_range={list(config['rating_range'])} ({len(outside)} such "
                f"value(s)). Fix: correct the value(s), or declare the scale they belong to."
            )
    metrics = [str(m).lower() for m in (config["metrics"] or [])]
    if label == config["LABEL_FIELD"] and "queryndcg" in metrics:
        negative = np.flatnonzero(present & (values < 0))
        if len(negative):
            raise DataError(
                f"{path} line {row_lines[negative[0]]}, column {label!r}: {values[negative[0]]:g} "
                f"is negative, and QueryNDCG uses the label as the gain of an item (a negative "
                f"gain makes nDCG meaningless). Fix: shift the scale to start at 0 or above, or "
                f"leave QueryNDCG out of metrics."
            )
    distinct = np.unique(values[present])
    outliers = None
    if declared is None:
        beyond = infer_outliers(distinct)
        if len(beyond):
            off = np.isin(values, distinct[beyond])
            first = int(np.flatnonzero(off)[0])
            outliers = (int(row_lines[first]), float(values[first]), int(off.sum()))
            distinct = np.delete(distinct, beyond)
    low, high = declared if declared is not None else (distinct[0], distinct[-1])
    scale = LabelScale(
        path=path,
        field=label,
        low=float(low),
        high=float(high),
        declared=declared is not None,
        values=tuple(distinct.tolist()) if len(distinct) <= FEW_VALUES else None,
        outliers=outliers,
    )
    logger.info(f"{os.path.basename(path)}: scale of {label!r}: {scale.describe()}")
    return scale
