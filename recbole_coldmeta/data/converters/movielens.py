"""MovieLens-1M with MeLU's state splits, converted to RecBole atomic files.

The interactions are the union of MeLU's five state splits (``melu_splits/<state>.json.gz``), the
ML-1M cold-start protocol of MeLU, MAMO and CCML; every row keeps its state in ``melu_state``.
Users come from GroupLens ``users.dat``; items from ``movies.dat`` joined with MeLU's
``movies_extrainfos.dat.gz`` (IMDb rating, genres, directors, actors and plot).

Fields:
    - ``.inter``: ``user_id, item_id, rating, melu_state`` with the original UserID and MovieID.
    - ``.user``: ``user_id, gender, age, occupation, zip_code``, the raw codes of ``users.dat``.
    - ``.item``: ``movie_title`` (title words without the year), ``release_year`` and ``genre``
      (the 18 GroupLens genres) from ``movies.dat``; ``rated``, ``director``, ``actor`` and
      ``imdb_genre`` (the IMDb genres MeLU uses) from ``movies_extrainfos``; multi-word names are
      joined by ``_`` (``Tom_Hanks``) and movies without an extrainfos line get empty values.

NOTE: ``director`` and ``actor`` keep the first :data:`MAX_PEOPLE` names (MeLU's code keeps every
listed name; the extrainfos list at most 4 actors), with notes such as ``(co-director)`` removed as
MeLU does. ``zip_code`` is kept whole (MeLU keeps its first 5 characters). A (user, item) pair
listed twice in the splits keeps its first row, in :data:`MELU_STATES` order.

The ``.item`` file carries two free-text columns, ``title_text`` and ``plot_text``, typed ``token``
only so that RecBole accepts the header: configs never list them in ``load_col`` (RecBole would
remap every distinct text to an id), and text encoders read them from the file directly with
``pandas.read_csv(path, sep="\\t", dtype=str, keep_default_na=False)`` (columns keep their typed
names, e.g. ``plot_text:token``). Fields that contain a double quote are written in CSV quoting,
which that call (and RecBole's own reader) undoes.

Reference: Lee et al. "MeLU: Meta-Learned User Preference Estimator for Cold-Start
Recommendation." in KDD 2019. https://doi.org/10.1145/3292500.3330859,
code https://github.com/hoyeoplee/MeLU. Data: Harper and Konstan. "The MovieLens Datasets:
History and Context." in ACM TiiS 2015. https://doi.org/10.1145/2827872.
"""

import csv
import gzip
import hashlib
import json
import logging
import os
import re
from pathlib import Path

import pandas as pd

from recbole_coldmeta.data.converters.hints import MISMATCH_FIX, raw_folder_fix
from recbole_coldmeta.utils import DataError

logger = logging.getLogger(__name__)

#: MeLU's states, in the order that decides which copy of a duplicated (user, item) pair is kept.
MELU_STATES = (
    "meta_training",
    "warm_up",
    "user_cold_testing",
    "item_cold_testing",
    "user_and_item_cold_testing",
)

#: At most this many directors and actors are kept per movie (in the listed order).
MAX_PEOPLE = 3

#: Raw file (relative to the raw folder) -> (sha256, number of records or None).
#: Source: /work/shared/datasets/movielens-1m/PROVENANCE.md ("Files" and "Counts").
EXPECTED_RAW_FILES = {
    "users.dat": ("1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3", 6_040),
    "movies.dat": ("0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9", 3_883),
    "movies_extrainfos.dat.gz": (
        "a3608c30e760b698e543d2685f184522b58a93f28ebc244254cc9deefcb44ac1",
        3_881,
    ),
    "ratings_no_timestamp.reconstructed.dat.gz": (
        "d934fe38efe771e9315be01f3184dc87bdddf93bc5b3f1aa0eb5ae624ce2d061",
        1_000_209,
    ),
    "melu_splits/meta_training.json.gz": (
        "a560ea310af411f694de546201a38e4e828a64573c02e30951635ee8db6bba9a",
        None,
    ),
    "melu_splits/meta_training_y.json.gz": (
        "af34e653b756810e0af9f1e420070f07c73c2e736038cf0fb4da49fe9e07c112",
        None,
    ),
    "melu_splits/warm_up.json.gz": (
        "2e4a32b78f77e8d2569c5f7f4455ccff78021c2869dc1dae1e3188c42259807e",
        None,
    ),
    "melu_splits/warm_up_y.json.gz": (
        "48122ddbab85b639540275202bfb4529c6ba4eca7f31960bdd320845c23d1d9e",
        None,
    ),
    "melu_splits/user_cold_testing.json.gz": (
        "779269995fd1fc740c869056de4e12b06e1dac279af4c79b52310115df7c3ad1",
        None,
    ),
    "melu_splits/user_cold_testing_y.json.gz": (
        "f56294306ccbcee534bc02c44221cc9dae61a75232ab249e3c7418197cf2a287",
        None,
    ),
    "melu_splits/item_cold_testing.json.gz": (
        "a87467cd9f28f4a089a9187920dd7024d363cd49c4715fa571d06a43da62dde6",
        None,
    ),
    "melu_splits/item_cold_testing_y.json.gz": (
        "9fc2fc01caa0117cf3340295158730d4ea5b2cdc86c4fdec123543124f4dafa4",
        None,
    ),
    "melu_splits/user_and_item_cold_testing.json.gz": (
        "0f83399b10a41c104b7062ae76e759b5d64bc97845f909d51a945051666d56c7",
        None,
    ),
    "melu_splits/user_and_item_cold_testing_y.json.gz": (
        "5edcd7c5bd4c3f118ab9a8367af9dd8e6def4c3b0006f7480789f1a4d35cc0c2",
        None,
    ),
}

#: Distinct (user, MovieID, rating) triples over the five states (PROVENANCE.md, step 2).
EXPECTED_SPLIT_TRIPLES = 1_000_206

INTER_HEADER = ("user_id:token", "item_id:token", "rating:float", "melu_state:token")
USER_HEADER = (
    "user_id:token",
    "gender:token",
    "age:token",
    "occupation:token",
    "zip_code:token",
)
ITEM_HEADER = (
    "item_id:token",
    "movie_title:token_seq",
    "release_year:token",
    "genre:token_seq",
    "rated:token",
    "director:token_seq",
    "actor:token_seq",
    "imdb_genre:token_seq",
    "title_text:token",
    "plot_text:token",
)

_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)$")
_PARENTHESES = re.compile(r"\([^()]*\)")
_MISSING = "N/A"


def convert_ml1m(raw_dir, out_dir, name="ml-1m", verify=True) -> Path:
    """Write ``<out_dir>/<name>/<name>.inter|.user|.item`` from the raw ML-1M files.

    Args:
        raw_dir (str or Path): folder with ``users.dat``, ``movies.dat``,
            ``movies_extrainfos.dat.gz``, ``ratings_no_timestamp.reconstructed.dat.gz`` and
            ``melu_splits/``.
        out_dir (str or Path): the RecBole ``data_path`` to write into.
        name (str): dataset name: the sub-folder and the stem of the atomic files.
        verify (bool): check every raw file's sha256 and record count against PROVENANCE.md.

    Returns:
        Path: the folder holding the three atomic files.

    Raises:
        DataError: a raw file is missing, malformed or (with ``verify``) not the expected copy.
    """
    raw_dir = Path(raw_dir)
    _check_raw_files(raw_dir, verify)
    users = _read_records(raw_dir, "users.dat", 5, "latin-1", verify)
    movies = _read_records(raw_dir, "movies.dat", 3, "latin-1", verify)
    extra_infos = _read_records(raw_dir, "movies_extrainfos.dat.gz", 11, "utf-8", verify)
    ratings = _read_records(
        raw_dir, "ratings_no_timestamp.reconstructed.dat.gz", 3, "latin-1", verify
    )
    inter = _read_melu_splits(raw_dir, verify)
    _log_ratings_mismatch(inter, ratings)
    inter = _drop_duplicate_pairs(inter)

    target = Path(out_dir) / name
    target.mkdir(parents=True, exist_ok=True)
    _write_atomic(pd.DataFrame(users), USER_HEADER, target / f"{name}.user")
    _write_atomic(_item_table(movies, extra_infos), ITEM_HEADER, target / f"{name}.item")
    # The .inter file goes last: its presence marks a finished conversion (ensure_converted).
    _write_atomic(inter, INTER_HEADER, target / f"{name}.inter")
    logger.info(
        f"Wrote {name}: {len(inter)} interactions, {len(users)} users, {len(movies)} items "
        f"to {target}"
    )
    return target


def _check_raw_files(raw_dir, verify):
    """Fail on the first missing raw file; with ``verify``, on the first wrong sha256."""
    for relative in EXPECTED_RAW_FILES:
        if not (raw_dir / relative).is_file():
            raise DataError(
                f"Raw ML-1M file '{relative}' not found in '{raw_dir.absolute()}'. "
                + raw_folder_fix(
                    "movielens-1m",
                    "users.dat, movies.dat, movies_extrainfos.dat.gz, "
                    "ratings_no_timestamp.reconstructed.dat.gz and melu_splits/",
                )
            )
    if not verify:
        return
    for relative, (expected, _) in EXPECTED_RAW_FILES.items():
        actual = hashlib.sha256((raw_dir / relative).read_bytes()).hexdigest()
        if actual != expected:
            _raise_mismatch(raw_dir / relative, "sha256", expected, actual)


def _raise_mismatch(path, what, expected, actual):
    raise DataError(
        f"Raw file '{path}' has {what} {actual}, expected {expected} (PROVENANCE.md). "
        + MISMATCH_FIX
    )


def _open_text(path, encoding):
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def _read_records(raw_dir, relative, n_fields, encoding, verify):
    """The ``::``-separated records of a raw file, as lists of ``n_fields`` strings.

    Raises:
        DataError: a line has another number of fields, or (with ``verify``) the number of records
            differs from PROVENANCE.md.
    """
    path = raw_dir / relative
    records = []
    with _open_text(path, encoding) as f:
        for line_number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split("::", n_fields - 1)
            if len(fields) != n_fields:
                raise DataError(
                    f"Raw file '{path}', line {line_number}: {len(fields)} '::'-separated fields, "
                    f"expected {n_fields}. Fix: re-copy the raw file."
                )
            records.append(fields)
    expected_rows = EXPECTED_RAW_FILES[relative][1]
    if verify and len(records) != expected_rows:
        _raise_mismatch(path, "row count", expected_rows, len(records))
    return records


def _read_melu_splits(raw_dir, verify):
    """Rows ``(user_id, item_id, rating, melu_state)`` of every state, in MELU_STATES order."""
    frames = []
    for state in MELU_STATES:
        items_of_user = _read_json(raw_dir / "melu_splits" / f"{state}.json.gz")
        ratings_of_user = _read_json(raw_dir / "melu_splits" / f"{state}_y.json.gz")
        if items_of_user.keys() != ratings_of_user.keys():
            raise DataError(
                f"MeLU split '{state}': {state}.json.gz and {state}_y.json.gz have different "
                f"users. Fix: re-copy both files."
            )
        users, items, ratings = [], [], []
        for user, user_items in items_of_user.items():
            user_ratings = ratings_of_user[user]
            if len(user_items) != len(user_ratings):
                raise DataError(
                    f"MeLU split '{state}', user {user}: {len(user_items)} items but "
                    f"{len(user_ratings)} ratings. Fix: re-copy both files."
                )
            users += [user] * len(user_items)
            items += user_items
            ratings += user_ratings
        frame = pd.DataFrame({"user_id": users, "item_id": items, "rating": ratings})
        frame["melu_state"] = state
        frames.append(frame.astype(str))
        logger.info(f"MeLU state {state}: {len(items_of_user)} users, {len(frame)} interactions")
    inter = pd.concat(frames, ignore_index=True)
    n_triples = len(inter.drop_duplicates(["user_id", "item_id", "rating"]))
    if verify and n_triples != EXPECTED_SPLIT_TRIPLES:
        _raise_mismatch(
            raw_dir / "melu_splits", "distinct triples", EXPECTED_SPLIT_TRIPLES, n_triples
        )
    return inter


def _read_json(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


def _log_ratings_mismatch(inter, ratings):
    """Log how many (user, item, rating) triples only the splits, or only the ratings file, hold."""
    split_triples = set(zip(inter["user_id"], inter["item_id"], inter["rating"]))
    rating_triples = {tuple(record) for record in ratings}
    only_splits = sorted(split_triples - rating_triples)
    only_ratings = sorted(rating_triples - split_triples)
    logger.info(
        f"{len(only_splits)} split triples are absent from the reconstructed ratings and "
        f"{len(only_ratings)} reconstructed triples are absent from the splits (PROVENANCE.md "
        f"expects a few, around MovieIDs 811 and 1741); e.g. {only_splits[:3]}, "
        f"{only_ratings[:3]}"
    )


def _drop_duplicate_pairs(inter):
    """Keep the first row of each (user, item) pair (by state order, then file order) and log."""
    pair = ["user_id", "item_id"]
    duplicated = inter.duplicated(pair, keep="first")
    if duplicated.any():
        dropped = inter[duplicated]
        copies = inter[inter.duplicated(pair, keep=False)]
        conflicting = int((copies.groupby(pair)["rating"].nunique() > 1).sum())
        logger.warning(
            f"Dropped {len(dropped)} duplicated (user, item) rows, keeping the first by state "
            f"order {list(MELU_STATES)}; {conflicting} of these pairs had different ratings; "
            f"states of the dropped rows: {dropped['melu_state'].value_counts().to_dict()}; "
            f"e.g. {list(zip(dropped['user_id'], dropped['item_id']))[:5]}"
        )
    return inter[~duplicated].reset_index(drop=True)


def _item_table(movies, extra_infos):
    """The ``.item`` table: ``movies.dat`` joined with ``movies_extrainfos`` on MovieID."""
    extra_of_movie = {record[0]: record for record in extra_infos}
    rows = []
    for movie_id, title, genres in movies:
        match = _TITLE_YEAR.match(title)
        short_title, year = match.groups() if match else (title, "")
        extra = extra_of_movie.get(movie_id)
        if extra is None:
            rated = directors = actors = imdb_genres = plot = ""
        else:
            rated = _token(_known(extra[3]))
            imdb_genres = _token_seq(_known(extra[5]).split(", "))
            directors = _token_seq(_people(extra[6]))
            actors = _token_seq(_people(extra[8]))
            plot = _text(_known(extra[9]))
        rows.append(
            (
                movie_id,
                _text(short_title),
                year,
                _token_seq(genres.split("|")),
                rated,
                directors,
                actors,
                imdb_genres,
                _text(title),
                plot,
            )
        )
    missing = sorted(set(record[0] for record in movies) - extra_of_movie.keys(), key=int)
    if missing:
        logger.warning(
            f"{len(missing)} of {len(movies)} movies have no movies_extrainfos line; their rated, "
            f"director, actor, imdb_genre and plot_text are empty: MovieIDs {missing[:20]}"
        )
    return pd.DataFrame(rows)


def _known(value):
    """``''`` for the ``N/A`` that movies_extrainfos writes for unknown values."""
    value = value.strip()
    return "" if value == _MISSING else value


def _people(names):
    """The first :data:`MAX_PEOPLE` names, without MeLU's ``(co-director)``-style notes."""
    people = [_PARENTHESES.sub("", name).strip() for name in _known(names).split(",")]
    return [person for person in people if person][:MAX_PEOPLE]


def _text(value):
    """Free text on one line: tabs, carriage returns and newlines become single spaces."""
    return " ".join(value.split())


def _token(value):
    """One token: inner whitespace becomes ``_`` (``Tom Hanks`` -> ``Tom_Hanks``)."""
    return "_".join(value.split())


def _token_seq(values):
    """Space-separated tokens, one per non-empty value."""
    return " ".join(token for token in map(_token, values) if token)


def _write_atomic(table, header, path):
    """Write ``table`` as a tab-separated atomic file under the typed ``header`` (one per column).

    The file appears only when complete (written to ``<path>.tmp<pid>`` first, then renamed), so
    two processes converting the same dataset at once never read or clobber a half-written file.
    """
    tmp_path = path.with_name(f"{path.name}.tmp{os.getpid()}")
    table.to_csv(
        tmp_path,
        sep="\t",
        index=False,
        header=list(header),
        encoding="utf-8",
        lineterminator="\n",
        quoting=csv.QUOTE_MINIMAL,
    )
    os.replace(tmp_path, path)
