"""Split manifests: every row's role in a split, by raw tokens, in a file one can audit and reuse.

A manifest is a gzipped CSV (a plain CSV is read too)::

    # {"dataset": "tiny", "format": "recbole_coldmeta split manifest", "seed": 2020, ...}
    user,item,role
    u3,i17,meta_train
    u5,i2,test_support

The first line, ours, is a JSON header (dataset, seed, split kind, the config keys that decided the
split, row and user counts); a file made elsewhere may leave it out. Then one line per interaction
row the split uses, with role ``meta_train``, ``valid_support``, ``valid_query``,
``test_support`` or ``test_query``; a row that is not listed is not used. A (user, item) pair
listed ``n`` times gives its first ``n`` rows by time these roles, in line order (a pair has
several rows only under ``duplicate_interactions: keep`` or in a sequence).

Rules (:func:`check_manifest`): a pair has one role (in a sequence, a repeat is a new event and may
sit on the other side of its cold user's support/query cut); a user is meta-train, valid or test,
not two of them (a split by state, ``user_split: field`` or ``time_states``, tests known users
in its warm and item-cold states: there a test user may have meta-train rows); every valid/test
user has a query row, and on the cold-start split a support row.

NOTE: a cold-start valid/test user needs a support row because every cold user adapts on (and a
RecBole model trains on) their support rows; a split without them is no few-shot split.

NOTE: the hash (``split_sha256``) is of the CSV rows only, not of the header: a manifest reused
or imported by ``split_file`` hashes as the split it gives, whatever seed the run has.

NOTE: a cross-domain manifest lists target-domain rows only (roles ``meta_train``,
``valid_query``, ``test_query``, one per user): every source-domain row is training data, a cold
user's source rows being what they bring, so none is listed.
"""

import csv
import functools
import gzip
import hashlib
import io
import json
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from recbole.utils import ModelType

from recbole_coldmeta.utils import ConfigError, DataError
from recbole_coldmeta.utils.atomic import atomic_path
from recbole_coldmeta.utils.enums import Role

FORMAT = "recbole_coldmeta split manifest"
COLUMNS = ("user", "item", "role")
#: The role words of a manifest, and the role of each word.
ROLE_WORDS = {role: role.name.lower() for role in Role if role is not Role.UNUSED}
WORD_ROLES = {word: role for role, word in ROLE_WORDS.items()}
QUERY_ROLES = (Role.VALID_QUERY, Role.TEST_QUERY)
SUPPORT_ROLES = (Role.VALID_SUPPORT, Role.TEST_SUPPORT)
USER_KINDS = ("meta_train", "valid", "test")
KIND_WORDS = dict(enumerate(USER_KINDS))
#: The user kind each role implies, indexed by role (an index into USER_KINDS).
KIND_OF_ROLE = np.asarray(
    [0 if r is Role.META_TRAIN else 1 if "VALID" in r.name else 2 for r in Role]
)
#: Splits by state (their warm and item-cold states test users with meta-train rows).
BY_STATE_SPLITS = ("field", "time_states")
#: States whose test items are new items (MeLU's names): absent from the meta-train rows.
ITEM_COLD_STATES = ("item_cold_testing", "user_and_item_cold_testing")


@dataclass(eq=False)
class SplitManifest:
    """The rows of a split and their roles; equal to another with the same header and rows.

    Attributes:
        header: the JSON header (``{}`` for a file without one).
        users: ``[R]`` raw user tokens (str).
        items: ``[R]`` raw item tokens (str).
        roles: ``[R]`` :class:`Role` values (never ``UNUSED``).
        lines: ``[R]`` each row's line in the file it was read from, or None (made by a split).
        source: the file it was read from, or None.
    """

    header: dict
    users: np.ndarray
    items: np.ndarray
    roles: np.ndarray
    lines: np.ndarray | None = None
    source: str | None = None

    def __eq__(self, other):
        if not isinstance(other, SplitManifest):
            return NotImplemented
        return self.header == other.header and self.sha256 == other.sha256

    __hash__ = None

    def line(self, row):
        """How an error names row ``row``: its file line, or the row itself."""
        if self.lines is None:
            return f"row ({self.users[row]}, {self.items[row]})"
        return f"{self.source} line {self.lines[row]}"

    @functools.cached_property
    def csv_text(self):
        """The CSV rows (column names first), without the header line (kept: it is hashed, then
        written)."""
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(COLUMNS)
        words = np.asarray(list(ROLE_WORDS.values()))[self.roles]
        writer.writerows(zip(self.users.tolist(), self.items.tolist(), words.tolist()))
        return text.getvalue()

    @functools.cached_property
    def sha256(self):
        """sha256 of :attr:`csv_text`: two splits are the same iff their hashes agree (the header,
        which names the seed and the keys, is left out)."""
        return hashlib.sha256(self.csv_text.encode("utf-8")).hexdigest()

    def write(self, path):
        """Write the manifest to ``path`` as a gzipped CSV, atomically.

        NOTE: the gzip header carries no time, so the same split gives the same bytes.
        """
        header = "# " + json.dumps(self.header, sort_keys=True, default=str) + "\n"
        data = (header + self.csv_text).encode("utf-8")
        with atomic_path(path) as temporary:
            with open(temporary, "wb") as f:
                f.write(gzip.compress(data, compresslevel=6, mtime=0))

    def counts(self):
        """``{"rows": {role word: n}, "users": {kind: n}}``."""
        rows = {word: int(np.sum(self.roles == role)) for role, word in ROLE_WORDS.items()}
        codes, tokens = pd.factorize(self.users)
        kind = np.zeros(len(tokens), dtype=np.int64)
        np.maximum.at(kind, codes, KIND_OF_ROLE[self.roles])  # a test user of a split by state
        users = {name: int(np.sum(kind == n)) for n, name in enumerate(USER_KINDS)}
        return {"rows": rows, "users": users}


def manifest_file(result_file):
    """Where the split manifest of ``result_file`` goes: ``<its stem>.split.csv.gz`` beside it."""
    stem, extension = os.path.splitext(result_file)
    return f"{stem if extension == '.json' else result_file}.split.csv.gz"


def read_manifest(path, key="split_file"):
    """Read a manifest (ours or a CSV of ``user,item,role`` made elsewhere), strictly.

    Raises:
        ConfigError: the file is missing or unreadable.
        DataError: a bad header, column row, field count or role word, naming the line.
    """
    if not os.path.isfile(path):
        raise ConfigError(
            f"{key}={path} does not exist; give a manifest written by a run (<result>.split.csv.gz)"
            f" or a CSV of user,item,role."
        )
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise DataError(f"{key}={path} cannot be read ({error}); it is not a manifest.") from None
    lines = text.splitlines()
    header, first = {}, 0
    if lines and lines[0].startswith("#"):
        try:
            header = json.loads(lines[0][1:])
        except json.JSONDecodeError:
            raise DataError(f"{path} line 1: the header is not JSON; remove the line.") from None
        first = 1
    if first >= len(lines) or tuple(next(csv.reader([lines[first]]))) != COLUMNS:
        raise DataError(
            f"{path} line {first + 1}: expected the column names {','.join(COLUMNS)}; add them "
            f"as the first line."
        )
    users, items, roles, numbers = [], [], [], []
    for number, fields in enumerate(csv.reader(lines[first + 1 :]), start=first + 2):
        if len(fields) != 3 or not fields[0] or not fields[1]:
            raise DataError(
                f"{path} line {number}: expected 3 fields user,item,role with a user and an "
                f"item, got {fields}."
            )
        if fields[2] not in WORD_ROLES:
            raise DataError(
                f"{path} line {number}: unknown role {fields[2]!r}; a role is one of "
                f"{', '.join(WORD_ROLES)}."
            )
        users.append(fields[0])
        items.append(fields[1])
        roles.append(int(WORD_ROLES[fields[2]]))
        numbers.append(number)
    if not users:
        raise DataError(f"{path} has no rows after its column names.")
    return SplitManifest(
        header, np.asarray(users), np.asarray(items), np.asarray(roles), np.asarray(numbers), path
    )


def check_manifest(manifest, by_state=False, sequential=False, cross_domain=False):
    """The rules of a manifest (module docstring).

    Args:
        by_state: a test user may also have meta-train rows (a split by state).
        sequential: a pair's rows may have different roles of one user's kind.
        cross_domain: only ``meta_train``, ``valid_query``, ``test_query``, one per user.

    Raises:
        DataError: the first broken rule, naming its lines.
    """
    roles = manifest.roles
    if cross_domain and np.isin(roles, SUPPORT_ROLES).any():
        row = int(np.flatnonzero(np.isin(roles, SUPPORT_ROLES))[0])
        raise DataError(
            f"{manifest.line(row)}: role {ROLE_WORDS[Role(roles[row])]} in a cross-domain "
            f"split, which hides every target row of a valid/test user; use valid_query or "
            f"test_query."
        )
    users = pd.factorize(manifest.users)[0]  # [R] user codes
    items = pd.factorize(manifest.items)[0]
    kinds = KIND_OF_ROLE[roles]  # [R] indices into USER_KINDS
    pairs = users * (items.max() + 1) + items
    if sequential and not cross_domain:  # a repeat event may sit on the other side of the cut
        _check_one_value(manifest, pairs, kinds, KIND_WORDS, "pair")
    else:
        _check_one_value(manifest, pairs, roles, ROLE_WORDS, "pair")
    if by_state and not cross_domain:
        test_user = np.zeros(users.max() + 1, dtype=bool)
        test_user[users[kinds == 2]] = True
        kinds = np.where(test_user[users] & (kinds == 0), 2, kinds)  # known, tested warm
    _check_one_value(manifest, users, kinds, KIND_WORDS, "user")
    wanted = [("query", QUERY_ROLES)] + ([] if cross_domain else [("support", SUPPORT_ROLES)])
    for what, of_what in wanted:
        has = np.zeros(users.max() + 1, dtype=bool)
        has[users[np.isin(roles, of_what)]] = True
        missing = np.flatnonzero((kinds > 0) & ~has[users])
        if len(missing):
            row = int(missing[0])
            raise DataError(
                f"{manifest.line(row)}: {USER_KINDS[kinds[row]]} user {manifest.users[row]!r} "
                f"has no {what} row; every valid/test user needs one."
            )


def _check_one_value(manifest, keys, values, words, what):
    """Every row of a pair (``what="pair"``) or of a user (``keys`` ``[R]``) has the value of
    its first row (``values`` ``[R]``: roles or user kinds, named by ``words``)."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    earliest = first[inverse]  # [R] each row's group's first row
    bad = np.flatnonzero(values != values[earliest])
    if len(bad) == 0:
        return
    row = int(bad[0])
    earlier = int(earliest[row])
    named = [words[int(values[r])] for r in (earlier, row)]
    if manifest.lines is None:
        where = f"{manifest.line(earlier)} and {manifest.line(row)}"
    else:
        where = f"{manifest.source} lines {manifest.lines[earlier]} and {manifest.lines[row]}"
    if what == "pair":
        name, rule = f"pair ({manifest.users[row]}, {manifest.items[row]})", "a pair has one role"
    else:
        name = f"user {manifest.users[row]!r}"
        rule = "a user is meta-train, valid or test, not two of them"
    raise DataError(f"{where}: {name} is both {named[0]} and {named[1]}; {rule}.")


def split_flags(header, config=None):
    """``(by_state, item_cold)`` of a manifest: a split by state (a test user may have
    meta-train rows) and an item-cold state (test query items are new items). From its header,
    else (a file made elsewhere) from the run's ``config``, else False."""
    if "by_state" in header:
        return bool(header["by_state"]), bool(header["item_cold"])
    if config is None:
        return False, False
    return config["user_split"] in BY_STATE_SPLITS, config["test_state"] in ITEM_COLD_STATES


def header_of(dataset, kind):
    """The JSON header of ``dataset``'s split (``kind``: ``cold_start`` or ``cross_domain``).

    NOTE: a split read from ``split_file`` keeps that file's ``by_state`` and ``item_cold``
    (:func:`split_flags`), so its manifest audits as the original did.
    """
    config = dataset.config
    source = dataset.split_file_header if config["split_file"] is not None else {}
    by_state, item_cold = split_flags(source, config)
    header = {
        "format": FORMAT,
        "dataset": dataset.dataset_name,
        "seed": config["seed"],
        "split": kind,
        "sequential": config["MODEL_TYPE"] == ModelType.SEQUENTIAL,
        "split_keys": {key: config[key] for key in dataset.split_keys},
        "by_state": by_state,
        "item_cold": item_cold,
    }
    if kind == "cross_domain":
        header["source_dataset"] = dataset.source.dataset_name
        header["note"] = "target-domain rows only: every source-domain row is training data"
    return header


def split_manifest(dataset, users, items, roles, order, kind):
    """The manifest of ``dataset``'s split: ``users``, ``items``, ``roles`` ``[R]`` (ids and
    :class:`Role` of its rows), listed in ``order`` (``[R]``, by user then time), unused rows
    left out."""
    order = order[roles[order] != Role.UNUSED]
    user_tokens = np.asarray(dataset.field2id_token[dataset.uid_field])[users[order]]
    item_tokens = np.asarray(dataset.field2id_token[dataset.iid_field])[items[order]]
    manifest = SplitManifest(
        header_of(dataset, kind), user_tokens.astype(str), item_tokens.astype(str), roles[order]
    )
    manifest.header.update(manifest.counts())
    return manifest


def split_file_roles(dataset, users, items, order, kind):
    """``[R]`` roles of ``dataset``'s rows (ids ``users``, ``items``; ``order`` by user then
    time) read from the manifest ``split_file``; rows it does not list are ``UNUSED``. Sets
    ``dataset.split_file_header`` (the file's header, ``{}`` without one).

    Raises:
        ConfigError: the file is missing, or its header names another dataset.
        DataError: it breaks a rule (:func:`check_manifest`), names users, items or pairs the
            dataset does not have, or leaves a part of the split empty.
    """
    config = dataset.config
    manifest = read_manifest(config["split_file"])
    named = manifest.header.get("dataset")
    if named is not None and named != dataset.dataset_name:
        raise ConfigError(
            f"split_file={manifest.source} is a manifest of dataset {named!r}, not of "
            f"{dataset.dataset_name!r}; use a manifest of this dataset (or --dataset={named})."
        )
    dataset.split_file_header = manifest.header
    sequential = config["MODEL_TYPE"] == ModelType.SEQUENTIAL
    cross_domain = kind == "cross_domain"
    check_manifest(manifest, split_flags(manifest.header, config)[0], sequential, cross_domain)
    user_ids = _ids(manifest, dataset, "user", dataset.uid_field, manifest.users)
    item_ids = _ids(manifest, dataset, "item", dataset.iid_field, manifest.items)
    n_items = len(dataset.field2id_token[dataset.iid_field])
    row_pairs = (users * n_items + items)[order]
    row_rank = np.empty(len(users), dtype=np.int64)
    row_rank[order] = pd.Series(row_pairs).groupby(row_pairs).cumcount().to_numpy()
    line_pairs = user_ids * n_items + item_ids
    line_rank = pd.Series(line_pairs).groupby(line_pairs).cumcount().to_numpy()
    width = int(max(row_rank.max(), line_rank.max())) + 1
    found = pd.Index((users * n_items + items) * width + row_rank).get_indexer(
        line_pairs * width + line_rank
    )
    if (found < 0).any():
        row = int(np.flatnonzero(found < 0)[0])
        raise DataError(
            f"{manifest.line(row)}: ({manifest.users[row]}, {manifest.items[row]}) is listed "
            f"more often than dataset {dataset.dataset_name} has rows of it "
            f"({int(np.sum(row_pairs == line_pairs[row]))}); remove the line."
        )
    roles = np.full(len(users), int(Role.UNUSED), dtype=np.int64)
    roles[found] = manifest.roles
    needed = (Role.META_TRAIN, Role.TEST_QUERY) + (() if cross_domain else (Role.VALID_QUERY,))
    empty = [ROLE_WORDS[role] for role in needed if not np.any(roles == role)]
    if empty:
        raise DataError(f"split_file={manifest.source} has no {' and no '.join(empty)} row.")
    return roles


def _ids(manifest, dataset, what, field, tokens):
    """The dataset ids of the manifest's ``tokens`` (``what``: ``user`` or ``item``).

    NOTE: more than half of the distinct tokens unknown reads as another dataset's manifest (one
    line saying so); fewer, as rows the dataset's filters dropped (the first one named).
    """
    known = dict(dataset.field2token_id[field])
    known.pop("[PAD]", None)
    ids = pd.Series(tokens).map(known)
    unknown = ids.isna().to_numpy()
    if not unknown.any():
        return ids.to_numpy(dtype=np.int64)
    row = int(np.flatnonzero(unknown)[0])
    share = len(set(tokens[unknown].tolist())) / len(set(tokens.tolist()))
    if share > 0.5:
        raise DataError(
            f"split_file={manifest.source}: {share:.0%} of its {what}s are not in dataset "
            f"{dataset.dataset_name} (e.g. {manifest.line(row)}: {tokens[row]!r}); is it another "
            f"dataset's manifest?"
        )
    raise DataError(
        f"{manifest.line(row)}: {what} {tokens[row]!r} is not in dataset {dataset.dataset_name} "
        f"after its filters (user_inter_num_interval={dataset.config['user_inter_num_interval']})"
        f"; remove its lines, or widen the filters."
    )


def audit(manifest, by_state=None, item_cold=None):
    """Check ``manifest`` on its own and count its parts.

    Args:
        by_state: as in :func:`check_manifest`; None: the header's (:func:`split_flags`).
        item_cold: test query items must be absent from the meta-train rows; None: the
            header's.

    Returns:
        dict: ``rows``, ``users`` (:meth:`SplitManifest.counts`), ``query_pairs_in_training``
        (query pairs that are also meta-train or support pairs: 0 but for repeat events of a
        sequence), ``test_query_items``, ``cold_test_query_items`` (those absent from the
        meta-train rows) and ``sha256``.

    Raises:
        DataError: a broken rule (a query pair in training data breaks the pair rule), or an
            item-cold split whose test query items appear in meta-train rows.
    """
    header_by_state, header_item_cold = split_flags(manifest.header)
    by_state = header_by_state if by_state is None else by_state
    item_cold = header_item_cold if item_cold is None else item_cold
    sequential = bool(manifest.header.get("sequential", False))
    cross_domain = manifest.header.get("split") == "cross_domain"
    check_manifest(manifest, by_state, sequential, cross_domain)
    users, items = pd.factorize(manifest.users)[0], pd.factorize(manifest.items)[0]
    pairs = users * (items.max() + 1) + items
    query = np.isin(manifest.roles, QUERY_ROLES)
    leaked = np.isin(pairs[query], pairs[~query])  # 0 by the pair rule, but for repeat events
    train_items = set(manifest.items[manifest.roles == Role.META_TRAIN].tolist())
    test_items = set(manifest.items[manifest.roles == Role.TEST_QUERY].tolist())
    cold_items = test_items - train_items
    if item_cold and cold_items != test_items:
        seen = sorted(test_items - cold_items)
        raise DataError(
            f"{manifest.source or 'manifest'}: item-cold split, but {len(seen)} test query items "
            f"are in meta-train rows (e.g. {seen[0]!r})."
        )
    return {
        **manifest.counts(),
        "query_pairs_in_training": int(leaked.sum()),
        "test_query_items": len(test_items),
        "cold_test_query_items": len(cold_items),
        "sha256": manifest.sha256,
    }
