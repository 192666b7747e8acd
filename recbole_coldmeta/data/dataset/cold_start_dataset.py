"""The user-level cold-start split, as RecBole dataset classes.

Users are partitioned into meta-train, valid and test users. Each valid/test user's interactions
are cut into a *support* set (the few shots a cold-start model adapts on) and a *query* set (what
it is scored on). RecBole's three splits are then:

- train = every interaction of meta-train users + the support interactions of valid/test users;
- valid = the query interactions of valid users;
- test = the query interactions of test users.

So every RecBole model trains and evaluates on the split unchanged, with the same few shots, and
meta-learners read each interaction's role (:class:`Role`) to build their tasks.
"""

from collections import Counter

import numpy as np
import torch
from recbole.data.dataset import Dataset, SequentialDataset

from recbole_coldmeta.data.item_features import load_item_modalities
from recbole_coldmeta.data.manifest import split_file_roles, split_manifest
from recbole_coldmeta.data.user_rows import UserRows
from recbole_coldmeta.meta import rank_within
from recbole_coldmeta.utils import ConfigError, DataError
from recbole_coldmeta.utils.enums import Role
from recbole_coldmeta.utils.streams import seeded_generator

#: Roles that RecBole's train split holds, and the roles of its valid and test splits.
SPLIT_ROLES = (
    (Role.META_TRAIN, Role.VALID_SUPPORT, Role.TEST_SUPPORT),
    (Role.VALID_QUERY,),
    (Role.TEST_QUERY,),
)
SUPPORT_MODES = ("first", "random", "all_but_query")
USER_SPLITS = ("random", "time", "field", "time_states")
#: The states ``user_split: time_states`` derives from ``split_time`` (MeLU's names).
TIME_STATES = ("warm_up", "user_cold_testing", "item_cold_testing", "user_and_item_cold_testing")
TIME_STATES_QUANTILE = 0.8


def parse_interval(text, key):
    """``"[13,100]"`` -> ``(13, 100)``; ``None`` -> no bounds. Only closed intervals and ``inf``.

    Raises:
        ConfigError: the text is not of the form ``[low,high]``.
    """
    if text is None:
        return -np.inf, np.inf
    parts = str(text).strip()
    if not (parts.startswith("[") and parts.endswith("]")) or parts.count(",") != 1:
        raise ConfigError(f"{key}={text!r} must be written [low,high], e.g. [13,100] or [1,inf].")
    low, high = (float(value) for value in parts[1:-1].split(","))
    return low, high


class ColdStartSplitMixin:
    """Replaces RecBole's ``build()`` by the user-level cold-start split when ``cold_start_split``.

    Config keys (``properties/overall.yaml`` documents each): ``user_split`` (random | time |
    field), ``user_split_ratio``, ``split_time``, ``split_field``, ``train_states``,
    ``test_state``, ``support_mode`` (first | random | all_but_query), ``support_size``,
    ``query_size``, ``new_user_max_inters``; ``split_file`` (a manifest) gives every row's role
    instead. Randomness comes from a ``torch.Generator`` seeded with ``seed``.

    After ``build()``, each returned dataset has ``cold_roles`` (a ``[rows]`` tensor of
    :class:`Role`) and every dataset shares ``split_info`` (user and interaction counts); the
    dataset has ``split_manifest`` (:class:`~recbole_coldmeta.data.manifest.SplitManifest`).
    """

    # Config keys that decide this split (hyper-parameter tuning keeps them fixed across trials).
    split_keys = (
        "cold_start_split",
        "user_split",
        "user_split_ratio",
        "split_time",
        "split_field",
        "train_states",
        "test_state",
        "task_size_interval",
        "support_mode",
        "support_size",
        "query_size",
        "new_user_max_inters",
        "split_file",
    )

    def build(self):
        if not self.config["cold_start_split"]:
            return super().build()
        if self.benchmark_filename_list is not None:
            raise ConfigError(
                "benchmark_filename and cold_start_split are exclusive: pre-split benchmark "
                "files already fix the split. Set cold_start_split: False to use them."
            )
        users = self.inter_feat[self.uid_field].to_numpy()
        items, order = self.inter_feat[self.iid_field].to_numpy(), self._time_order(users)
        if self.config["split_file"] is None:
            self._check_split_config()
            roles = self._assign_roles()
        else:  # the roles of a saved or imported split
            roles = split_file_roles(self, users, items, order, "cold_start")
        self.split_manifest = split_manifest(self, users, items, roles, order, "cold_start")
        roles = self._roles_before_format(roles)
        self._change_feat_format()
        roles = self._roles_after_format(roles)
        assert len(roles) == len(self.inter_feat)
        datasets = []
        for split_roles in SPLIT_ROLES:
            rows = np.flatnonzero(np.isin(roles, split_roles))
            part = self.copy(self.inter_feat[torch.from_numpy(rows)])
            part.cold_roles = torch.from_numpy(roles[rows])
            datasets.append(part)
        self.split_info = self._split_info(roles, datasets)
        for part in datasets:
            part.split_info = self.split_info
        self.logger.info(f"cold-start split: {self.split_info}")
        return datasets

    def _roles_before_format(self, roles):
        """Hook: reorder rows (and their roles) before the DataFrame becomes an Interaction."""
        return roles

    def _roles_after_format(self, roles):
        """Hook: map roles onto the rows that ``_change_feat_format`` produced."""
        return roles

    def _check_split_config(self):
        config = self.config
        if config["user_split"] not in USER_SPLITS:
            raise ConfigError(
                f"user_split={config['user_split']!r} is not one of {', '.join(USER_SPLITS)}."
            )
        ratio = config["user_split_ratio"]
        if (
            not isinstance(ratio, list | tuple)
            or len(ratio) != 3
            or any(r < 0 for r in ratio)
            or abs(sum(ratio) - 1.0) > 1e-6
        ):
            raise ConfigError(
                f"user_split_ratio={ratio} must be three non-negative fractions (meta-train, "
                f"valid, test users) that sum to 1, e.g. [0.7, 0.1, 0.2]."
            )
        if config["support_mode"] not in SUPPORT_MODES:
            raise ConfigError(
                f"support_mode={config['support_mode']!r} is not one of {', '.join(SUPPORT_MODES)}."
            )
        key = "query_size" if config["support_mode"] == "all_but_query" else "support_size"
        if not isinstance(config[key], int) or config[key] < 1:
            raise ConfigError(
                f"{key}={config[key]!r} must be a positive integer with support_mode="
                f"{config['support_mode']}."
            )
        if config["user_split"] in ("time", "time_states") and (
            self.time_field not in self.inter_feat
        ):
            raise ConfigError(
                f"user_split={config['user_split']} needs a time field, and this dataset has none "
                f"(TIME_FIELD={self.time_field!r}). Use user_split: random."
            )
        if config["user_split"] == "time_states" and config["test_state"] not in TIME_STATES:
            raise ConfigError(
                f"user_split=time_states derives the states {', '.join(TIME_STATES)} from "
                f"split_time; test_state={config['test_state']!r} is not one of them."
            )
        if config["user_split"] == "field":
            field = config["split_field"]
            if field is None or field not in self.inter_feat:
                raise ConfigError(
                    f"user_split=field needs split_field to name a loaded interaction field; "
                    f"got split_field={field!r}. Add it to load_col['inter']."
                )
            if not config["train_states"] or config["test_state"] is None:
                raise ConfigError("user_split=field needs train_states (a list) and test_state.")

    def _generator(self, stream):
        return seeded_generator(self.config["seed"], stream)

    def rows_by_user(self, *roles):
        """The rows of this split part whose role is one of ``roles``, grouped by user
        (:class:`~recbole_coldmeta.data.user_rows.UserRows`): e.g. ``rows_by_user(Role.META_TRAIN)``
        on the train part is every meta-training task."""
        return UserRows.of_roles(self, roles)

    def item_modalities(self, modalities):
        """``{modality: [N, F]}`` side features of every item that the data provides
        (:func:`~recbole_coldmeta.data.item_features.load_item_modalities`)."""
        return load_item_modalities(self.config, self, modalities)

    def _time_order(self, users):
        """Row order by (user, time), or (user, file order) without a time field."""
        rows = np.arange(len(users))
        if self.time_field in self.inter_feat:
            return np.lexsort((rows, self.inter_feat[self.time_field].to_numpy(), users))
        return np.lexsort((rows, users))

    @staticmethod
    def _rank_within(groups, keys):
        """:func:`~recbole_coldmeta.meta.rank_within` on numpy arrays (ties: row order)."""
        return rank_within(
            torch.from_numpy(np.array(groups)), torch.from_numpy(np.array(keys))
        ).numpy()

    def _assign_roles(self):
        """A :class:`Role` for every row of ``inter_feat``."""
        users = self.inter_feat[self.uid_field].to_numpy()
        if self.config["user_split"] == "field":
            roles = self._field_roles(users, self._field_states(), self.config["train_states"])
        elif self.config["user_split"] == "time_states":
            roles = self._field_roles(users, self._time_states(users), ["meta_training"])
        else:
            roles = self._partition_users(users)
        self._truncate_new_users(users, roles)
        task_rows = np.flatnonzero(np.isin(roles, (Role.VALID_QUERY, Role.TEST_QUERY)))
        is_query = self._query_rows(users, task_rows)
        roles[task_rows[~is_query]] -= Role.VALID_QUERY - Role.VALID_SUPPORT
        return roles

    def _truncate_new_users(self, users, roles):
        """``new_user_max_inters = n``: keep only the first ``n`` interactions (by time) of each
        valid/test user, as a new user with a short history (MML's protocol); the rest is UNUSED.
        """
        limit = self.config["new_user_max_inters"]
        if limit is None:
            return
        if not isinstance(limit, int) or limit < 2:
            raise ConfigError(
                f"new_user_max_inters={limit!r} must be an integer >= 2 (support and query) or "
                f"None."
            )
        new_rows = np.flatnonzero(np.isin(roles, (Role.VALID_QUERY, Role.TEST_QUERY)))
        position = np.empty(len(users), dtype=np.int64)
        position[self._time_order(users)] = np.arange(len(users))
        rank = self._rank_within(users[new_rows], position[new_rows])
        roles[new_rows[rank >= limit]] = Role.UNUSED

    def _partition_users(self, users):
        unique_users = np.unique(users)
        n_users = len(unique_users)
        ratio = self.config["user_split_ratio"]
        n_train = int(round(ratio[0] * n_users))
        n_valid = int(round(ratio[1] * n_users))
        if self.config["user_split"] == "random":
            ranked = unique_users[
                torch.randperm(n_users, generator=self._generator("user_split")).numpy()
            ]
        else:
            first = self._first_times(users)[unique_users]
            ranked = unique_users[np.lexsort((unique_users, first))]
            if self.config["split_time"] is not None:
                n_train = int(np.sum(first < float(self.config["split_time"])))
                n_new = n_users - n_train
                n_valid = int(round(n_new * ratio[1] / max(ratio[1] + ratio[2], 1e-12)))
        n_test = n_users - n_train - n_valid
        if min(n_train, n_valid, n_test) <= 0:
            raise ConfigError(
                f"The user split leaves an empty part: {n_train} meta-train, {n_valid} valid and "
                f"{n_test} test users of {n_users}. Fix user_split_ratio (or split_time), or "
                f"widen user_inter_num_interval."
            )
        role_of_user = np.full(users.max() + 1, Role.UNUSED, dtype=np.int64)
        role_of_user[ranked[:n_train]] = Role.META_TRAIN
        role_of_user[ranked[n_train : n_train + n_valid]] = Role.VALID_QUERY
        role_of_user[ranked[n_train + n_valid :]] = Role.TEST_QUERY
        return role_of_user[users]

    def _first_times(self, users):
        first = np.full(users.max() + 1, np.inf)
        np.minimum.at(first, users, self.inter_feat[self.time_field].to_numpy())
        return first

    def _field_states(self):
        """Each row's state name, read from ``split_field``."""
        field = self.config["split_field"]
        states = self.inter_feat[field].to_numpy()
        if field in self.field2id_token:
            return np.asarray(self.field2id_token[field])[states]
        return states

    def _time_states(self, users):
        """Each row's state, derived from ``split_time`` (MeLU's four states, by time).

        Rows before the split time are ``meta_training``. A later row is ``warm_up`` when its
        user and its item both have a row before the split time, ``user_cold_testing`` when only
        the item has, ``item_cold_testing`` when only the user has, ``user_and_item_cold_testing``
        when neither has. ``split_time: None`` takes the 80th percentile of interaction times.
        """
        times = self.inter_feat[self.time_field].to_numpy().astype(float)
        split_time = self.config["split_time"]
        split_time = (
            float(np.quantile(times, TIME_STATES_QUANTILE))
            if split_time is None
            else float(split_time)
        )
        items = self.inter_feat[self.iid_field].to_numpy()
        old_user = self._first_times(users)[users] < split_time
        item_first = np.full(items.max() + 1, np.inf)
        np.minimum.at(item_first, items, times)
        old_item = item_first[items] < split_time
        names = np.select(
            [times < split_time, old_user & old_item, old_item, old_user],
            ["meta_training", *TIME_STATES[:3]],
            default=TIME_STATES[3],
        )
        self.logger.info(f"user_split=time_states at split_time={split_time}")
        return names

    def _field_roles(self, users, names, train_states):
        """Roles from per-row state ``names``: ``train_states`` rows are meta-training data,
        ``test_state`` rows test tasks, validation users a share of the other train users."""
        train_rows = np.isin(names, train_states)
        test_rows = names == self.config["test_state"]
        if not test_rows.any():
            raise ConfigError(
                f"test_state={self.config['test_state']!r} matches no interaction; the states "
                f"are {sorted(set(names.tolist()))}."
            )
        train_rows &= self._task_size_ok(users, train_rows)
        test_rows &= self._task_size_ok(users, test_rows)
        roles = np.full(len(users), Role.UNUSED, dtype=np.int64)
        roles[train_rows] = Role.META_TRAIN
        roles[test_rows] = Role.TEST_QUERY
        ratio = self.config["user_split_ratio"]
        candidates = np.setdiff1d(np.unique(users[train_rows]), np.unique(users[test_rows]))
        n_valid = int(round(len(candidates) * ratio[1] / max(ratio[0] + ratio[1], 1e-12)))
        if n_valid == 0:
            raise ConfigError(
                f"user_split={self.config['user_split']} found no validation users: of the "
                f"{len(candidates)} train-state "
                f"users that are not test users, user_split_ratio={ratio} keeps none."
            )
        perm = torch.randperm(len(candidates), generator=self._generator("user_split")).numpy()
        roles[train_rows & np.isin(users, candidates[perm[:n_valid]])] = Role.VALID_QUERY
        return roles

    def _task_size_ok(self, users, rows):
        """Rows whose user has a number of ``rows`` inside ``task_size_interval`` (field mode)."""
        low, high = parse_interval(self.config["task_size_interval"], "task_size_interval")
        count = np.bincount(users[rows], minlength=users.max() + 1)[users]
        keep = (count >= low) & (count <= high)
        dropped = int(np.sum(rows & ~keep))
        if dropped:
            self.logger.info(
                f"task_size_interval={self.config['task_size_interval']}: {dropped} interactions "
                f"of users with a task size outside it are not used."
            )
        return keep

    def _query_rows(self, users, task_rows):
        """Boolean mask over ``task_rows``: which rows are query (the rest is support)."""
        config = self.config
        task_users = users[task_rows]
        timed = self.time_field in self.inter_feat
        if config["support_mode"] == "random" or not timed:
            keys = torch.rand(len(task_rows), generator=self._generator("support_query")).numpy()
        else:
            position = np.empty(len(users), dtype=np.int64)
            position[self._time_order(users)] = np.arange(len(users))
            keys = position[task_rows]
        rank = self._rank_within(task_users, keys)
        count = np.bincount(task_users)[task_users]
        if config["support_mode"] == "all_but_query":
            self._check_task_sizes(count, config["query_size"], "query_size")
            is_query = rank >= count - config["query_size"]
        else:
            self._check_task_sizes(count, config["support_size"], "support_size")
            is_query = rank >= config["support_size"]
        return self._one_side_per_pair(users, task_rows, is_query)

    def _one_side_per_pair(self, users, task_rows, is_query):
        """``is_query`` with every row of a repeated (user, item) pair on the side of the pair's
        first row by time (file order without a time field).

        NOTE: repeats reach the split only under ``duplicate_interactions: keep``; a support row
        and a query row of one pair would show the model the rating it is scored on. Sequences
        (:class:`ColdStartSequentialDataset`) keep their repeats where time puts them: there a
        repeat is a new event (see :func:`~recbole_coldmeta.data.row_checks.duplicate_policy`).
        """
        items = self.inter_feat[self.iid_field].to_numpy()[task_rows]
        pair = users[task_rows] * (int(items.max()) + 1) + items
        if len(np.unique(pair)) == len(pair):
            return is_query
        position = np.empty(len(users), dtype=np.int64)
        position[self._time_order(users)] = np.arange(len(users))
        order = np.argsort(position[task_rows], kind="stable")
        _, first, inverse = np.unique(pair[order], return_index=True, return_inverse=True)
        moved = np.empty_like(is_query)
        moved[order] = is_query[order][first][inverse]
        return moved

    def _check_task_sizes(self, count, size, key):
        if len(count) == 0:
            raise DataError("No valid or test user has interactions: the split is empty.")
        if count.min() <= size:
            short = int(np.sum(count <= size))
            raise ConfigError(
                f"{key}={size}, but some valid/test users have only {int(count.min())} "
                f"interactions ({short} interactions belong to such users), leaving an empty "
                f"{'support' if key == 'query_size' else 'query'} set. Lower {key}, or raise the "
                f"lower bound of user_inter_num_interval (now "
                f"{self.config['user_inter_num_interval']})."
            )

    def _split_info(self, roles, datasets):
        counts = Counter(roles.tolist())
        users = self.inter_feat[self.uid_field].numpy()  # aligned with roles

        def users_with(role):
            return len(np.unique(users[roles == role]))

        return {
            "meta_train_users": users_with(Role.META_TRAIN),
            "valid_users": users_with(Role.VALID_QUERY),
            "test_users": users_with(Role.TEST_QUERY),
            "train_inters": len(datasets[0]),
            "valid_inters": len(datasets[1]),
            "test_inters": len(datasets[2]),
            "support_inters": counts[Role.VALID_SUPPORT] + counts[Role.TEST_SUPPORT],
            "unused_inters": counts[Role.UNUSED],
        }


class ColdStartDataset(ColdStartSplitMixin, Dataset):
    """RecBole's ``Dataset`` with the user-level cold-start split."""


class ColdStartSequentialDataset(ColdStartSplitMixin, SequentialDataset):
    """RecBole's ``SequentialDataset`` with the user-level cold-start split.

    Each augmented row (a prefix and its next item) takes the role of its target interaction, so
    a valid/test user's support targets train the model and their query targets evaluate it.
    """

    def _one_side_per_pair(self, users, task_rows, is_query):
        """Unchanged: in a sequence a repeated pair is a new event (a repeat purchase)."""
        return is_query

    def _roles_before_format(self, roles):
        # RecBole's augmentation sorts by (user, time) with a stable sort: sorting here first
        # makes its row order known, so roles can follow the rows.
        order = self._time_order(self.inter_feat[self.uid_field].to_numpy())
        self.inter_feat = self.inter_feat.iloc[order].reset_index(drop=True)
        users = self.inter_feat[self.uid_field].to_numpy()
        self._is_target = np.r_[False, users[1:] == users[:-1]]  # every row but a user's first
        return roles[order]

    def _roles_after_format(self, roles):
        # Augmented rows are the targets: every interaction but each user's first, in order.
        return roles[self._is_target]
