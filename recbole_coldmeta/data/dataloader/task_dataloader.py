"""Task batches for meta-training: T users per batch, each with padded support and query sets."""

from logging import getLogger

import numpy as np
import torch
from recbole.data.dataloader.abstract_dataloader import AbstractDataLoader
from recbole.data.interaction import Interaction
from recbole.utils import ModelType

from recbole_coldmeta.data.sampling import sample_negatives
from recbole_coldmeta.data.user_rows import UserRows
from recbole_coldmeta.meta import pad_groups, rank_within
from recbole_coldmeta.utils import ConfigError
from recbole_coldmeta.utils.enums import Role
from recbole_coldmeta.utils.streams import seeded_generator


class MetaTaskDataLoader(AbstractDataLoader):
    """Iterates over meta-training tasks: one task per meta-train user, ``task_batch_size`` a batch.

    Each epoch re-draws every task's support/query cut with a ``torch.Generator`` seeded from
    ``seed`` (task order comes from RecBole's seeded loader generator): with ``support_mode``
    ``all_but_query``, ``query_size`` random interactions are the query and the rest the support;
    with ``first``/``random``, ``support_size`` random interactions are the support and the rest
    the query. Users too small for a non-empty support and query are skipped (counted, logged).

    A batch is an ``Interaction`` with, for ``T`` tasks, ``S``/``Q`` the largest support/query
    set in the batch (``support_*``/``query_*`` padded with 0, masks marking real rows):

    - ``<USER_ID_FIELD>``: ``[T]``
    - ``support_item``, ``support_label``, ``support_mask``: ``[T, S]``
    - ``query_item``, ``query_label``, ``query_mask``: ``[T, Q]``

    Labels are the ``RATING_FIELD`` values (``LABEL_FIELD`` if there is no rating field; 1 for
    every row of implicit data without either).
    With ``meta_feedback: implicit`` the batch also holds ``support_neg_item`` /
    ``support_neg_mask`` and ``query_neg_item`` / ``query_neg_mask`` (``[T, S * k]``,
    ``[T, Q * k]``): ``k = task_neg_sample_num`` negatives per row, drawn from the same seeded
    generator, none of them an item the task's user has a row with.

    On a sequential dataset (rows = a prefix and its next item, in time order per user) a task's
    rows are cut by time, not at random: each epoch a random window of ``new_user_max_inters``
    consecutive rows (all rows when it is None) is drawn per user, its last ``query_size`` rows
    are the query and the rest the support, mimicking a new user with a short history. The
    batch then also holds ``support_<list field>`` / ``query_<list field>`` (``[T, S, L]``) and
    ``support_<length field>`` / ``query_<length field>`` (``[T, S]``); labels are 1.

    NOTE: with ``task_bucket_batches: B > 1`` (default 8) each epoch shuffles the tasks, cuts the
    order into chunks of ``B`` batches, sorts every chunk by task size and shuffles the resulting
    batches: tasks of similar size share a batch, so far fewer padded rows are computed (on ML-1M
    real rows go from 47% to 89% of a batch). Batches are then less mixed in size than a plain
    shuffle; ``task_bucket_batches: 1`` gives RecBole's plain shuffled batches.
    """

    # Config keys that decide the task cuts (hyper-parameter tuning keeps them fixed across trials).
    split_keys = ("support_mode", "support_size", "query_size", "new_user_max_inters")

    def __init__(self, config, dataset, sampler, shuffle=False):
        self.uid_field = dataset.uid_field
        self.iid_field = dataset.iid_field
        self.sequential = config["MODEL_TYPE"] == ModelType.SEQUENTIAL
        self.sequence_fields = (
            [config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"], config["ITEM_LIST_LENGTH_FIELD"]]
            if self.sequential
            else []
        )
        self.window = config["new_user_max_inters"] if self.sequential else None
        label_field = config["RATING_FIELD"]
        if label_field not in dataset.inter_feat:
            label_field = config["LABEL_FIELD"]
        implicit = config["meta_feedback"] == "implicit" and not self.sequential
        if label_field not in dataset.inter_feat and not (self.sequential or implicit):
            raise ConfigError(
                f"Meta-training on ratings needs a label: neither RATING_FIELD="
                f"{config['RATING_FIELD']!r} nor LABEL_FIELD={config['LABEL_FIELD']!r} is a "
                f"loaded interaction field. Add one to load_col['inter'], or for data without "
                f"ratings set meta_feedback: implicit (every row a positive)."
            )
        self.label_field = label_field
        self.support_mode = config["support_mode"]
        self.cut_size = (
            config["query_size"] if self.support_mode == "all_but_query" else config["support_size"]
        )
        self._index_tasks(dataset)
        self.sample_size = len(self.task_users)
        self.task_generator = seeded_generator(config["seed"], "tasks")
        self.neg_sample_num = config["task_neg_sample_num"] if implicit else 0
        self.n_items = dataset.item_num
        super().__init__(config, dataset, sampler, shuffle=shuffle)
        if not config["single_spec"]:  # RecBole's DistributedSampler shards the tasks: seed it
            self.sampler.seed = int(config["seed"])

    def _index_tasks(self, dataset):
        if getattr(dataset, "cold_roles", None) is None:
            raise ConfigError(
                "Meta-learning models need the cold-start split: set cold_start_split: True."
            )
        index = UserRows.of_roles(dataset, (Role.META_TRAIN,), self.uid_field)
        keep = index.counts > self.cut_size
        skipped = int((~keep).sum())
        if skipped:
            getLogger().warning(
                f"{skipped} meta-train users have at most {self.cut_size} interactions and are "
                f"not used as training tasks."
            )
        tasks = index.subset(keep)
        self.task_users, self.task_starts, self.task_counts = (
            tasks.users,
            tasks.starts,
            tasks.counts,
        )
        self.task_rows = tasks.rows
        if len(self.task_users) == 0:
            raise ConfigError(
                f"No meta-train user has more than {self.cut_size} interactions, so there is "
                f"no training task. Lower query_size/support_size or user_split_ratio[0]."
            )
        self.items = dataset.inter_feat[self.iid_field]
        if self.label_field in dataset.inter_feat:
            self.labels = dataset.inter_feat[self.label_field].float()
        else:  # implicit or sequential next-item data: every row is a positive
            self.labels = torch.ones(len(self.items))
        self.sequences = {field: dataset.inter_feat[field] for field in self.sequence_fields}

    def _init_batch_size_and_step(self):
        batch_size = self.config["task_batch_size"]
        self.step = batch_size
        self.set_batch_size(batch_size)

    def __iter__(self):
        bucket = self.config["task_bucket_batches"]
        if not self.shuffle or bucket <= 1 or not self.config["single_spec"]:
            yield from super().__iter__()
            return
        order = torch.randperm(self.sample_size, generator=self.generator)
        span = self.step * bucket
        batches = []
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            by_size = chunk[torch.argsort(self.task_counts[chunk], stable=True)]
            batches += list(by_size.split(self.step))
        for position in torch.randperm(len(batches), generator=self.generator).tolist():
            yield self.collate_fn(batches[position].tolist())

    def collate_fn(self, index):
        tasks = torch.as_tensor(np.asarray(index), dtype=torch.long)  # [T]
        counts = self.task_counts[tasks]
        group = torch.repeat_interleave(torch.arange(len(tasks)), counts)  # [R]
        offsets = torch.arange(len(group)) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts
        )
        rows = self.task_rows[self.task_starts[tasks][group] + offsets]  # [R]
        if self.sequential:
            is_query, used = self._time_cut(counts, group, offsets)
        else:
            keys = torch.rand(len(rows), generator=self.task_generator)
            rank = rank_within(group, keys, stable=False)
            in_cut = rank < self.cut_size
            is_query = in_cut if self.support_mode == "all_but_query" else ~in_cut
            used = torch.ones_like(is_query)
        batch = {self.uid_field: self.task_users[tasks]}
        for prefix, selected in (("support", used & ~is_query), ("query", used & is_query)):
            index_, mask = pad_groups(group[selected], len(tasks))  # [T, S] / [T, Q]
            chosen = rows[selected][index_]
            batch[f"{prefix}_item"] = torch.where(mask, self.items[chosen], 0)
            batch[f"{prefix}_label"] = torch.where(mask, self.labels[chosen], 0.0)
            batch[f"{prefix}_mask"] = mask
            for field, values in self.sequences.items():
                picked = values[chosen]  # [T, S] or [T, S, L]
                keep = mask.view(*mask.shape, *([1] * (picked.dim() - 2)))
                batch[f"{prefix}_{field}"] = torch.where(keep, picked, 0)
        if self.neg_sample_num:
            self._add_negatives(batch, group, rows)
        return Interaction(batch)

    def _add_negatives(self, batch, group, rows):
        """``<prefix>_neg_item`` / ``<prefix>_neg_mask`` ``[T, S * k]``: ``k`` negatives per
        support/query row, none of them an item of the task's user (``meta_feedback: implicit``)."""
        index, mask = pad_groups(group, len(batch[self.uid_field]))
        known = torch.where(mask, self.items[rows[index]], 0)  # [T, R]: all the task's items
        k = self.neg_sample_num
        for prefix in ("support", "query"):
            row_mask = batch[f"{prefix}_mask"]
            negatives = sample_negatives(
                known, mask, row_mask.shape[1] * k, self.n_items, self.task_generator
            )
            batch[f"{prefix}_neg_item"] = negatives
            batch[f"{prefix}_neg_mask"] = row_mask.repeat_interleave(k, dim=1)

    def _time_cut(self, counts, group, offsets):
        """Sequential tasks: a random window of ``new_user_max_inters`` rows per task; its last
        ``query_size`` rows (by time) are the query. Returns ``(is_query, used)`` over rows."""
        width = counts if self.window is None else counts.clamp(max=self.window)  # [T]
        room = (counts - width).float()
        draw = torch.rand(len(counts), generator=self.task_generator)
        start = torch.floor(draw * (room + 1)).long()  # [T]
        position = offsets - start[group]
        used = (position >= 0) & (position < width[group])
        is_query = position >= width[group] - self.cut_size
        return is_query, used
