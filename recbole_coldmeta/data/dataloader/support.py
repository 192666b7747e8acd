"""Support rows in evaluation batches: the one route by which a cold user's support set reaches a
model, in evaluation as in meta-training (:class:`MetaTaskDataLoader`'s ``support_*`` fields).

Shapes: ``n_users`` user ids, ``S`` the largest support set of the split, ``B`` rows of a batch,
``L`` sequence length, ``k`` negatives per support row.
"""

import contextlib
import copy
import functools

import torch
from recbole.data.interaction import Interaction
from recbole.utils import ModelType

from recbole_coldmeta.data.sampling import sample_negatives
from recbole_coldmeta.data.user_rows import UserRows
from recbole_coldmeta.utils.enums import Role
from recbole_coldmeta.utils.streams import seeded_generator

#: Roles of the support rows in a cold-start train split.
SUPPORT_ROLES = (Role.VALID_SUPPORT, Role.TEST_SUPPORT)


def support_slots(train_dataset):
    """Every valid/test user's support rows in the train split, and their order of shots.

    Returns:
        tuple: ``rows [n_users, S]`` (positions in ``train_dataset.inter_feat``, in row order),
        ``mask [n_users, S]`` and ``shot [n_users, S]``: each row's rank among its user's
        support rows, by time (``TIME_FIELD``) where the train split has it, else by row order;
        ties keep row order. The first ``K`` shots of a user are the rows with ``shot < K``.

    NOTE: without a time field the order is the train split's row order (the data file's), not
    the order in which the split drew the support rows (that draw is not kept).
    """
    index = UserRows.of_roles(train_dataset, SUPPORT_ROLES)
    rows, mask = index.padded(train_dataset.user_num)  # [n_users, S]
    inter = train_dataset.inter_feat
    if train_dataset.time_field in inter:
        key = torch.where(mask, inter[train_dataset.time_field][rows].double(), torch.inf)
    else:
        key = torch.where(mask, 0.0, torch.inf).double()
    order = torch.argsort(key, dim=1, stable=True)  # [n_users, S]: slots by time
    slots = torch.arange(mask.shape[1]).expand_as(order)
    shot = torch.empty_like(order).scatter_(1, order, slots)
    return rows, mask, shot


def limit_support(train_dataset, shots):
    """The train split with each valid/test user's support cut to their first ``shots`` rows
    (:func:`support_slots`); other rows are kept in order. ``cold_roles`` follows the rows."""
    rows, mask, shot = support_slots(train_dataset)
    keep = torch.ones(len(train_dataset.inter_feat), dtype=torch.bool)
    keep[rows[mask & (shot >= shots)]] = False
    part = train_dataset.copy(train_dataset.inter_feat[keep])
    part.cold_roles = train_dataset.cold_roles[keep]
    return part


class SupportTable:
    """Every valid/test user's support set, read once from the split's train part.

    Holds, per user id (``[n_users, S]``; users without support have empty lines):
    ``support_item``, ``support_mask`` and ``support_label`` (the ``LABEL_FIELD`` values where
    loaded; 1 with ``meta_feedback: implicit`` and no label column). With ``meta_feedback:
    implicit`` (non-sequential):
    ``support_neg_item`` / ``support_neg_mask`` ``[n_users, S * k]``, ``k =
    task_neg_sample_num`` fixed negatives per support row, none of them a support item of the user
    (one seeded draw, stream ``support_negatives``). On a sequential dataset: also
    ``support_<list field>`` ``[n_users, S, L]`` and ``support_<length field>`` (1 on padding);
    ``support_item`` is then each row's target item. ``shot [n_users, S]``: each slot's rank
    in the user's order of shots (:func:`support_slots`), which :meth:`limited` cuts by.

    NOTE: every line is padded to the same ``S`` (the split's largest support set), not to the
    largest of a batch: a user's support tensors then do not depend on which users share their
    batch, so adaptation gives the same numbers whatever the batching.
    """

    def __init__(self, config, train_dataset):
        rows, mask, self.shot = support_slots(train_dataset)  # [n_users, S]
        inter = train_dataset.inter_feat
        self.user_field = train_dataset.uid_field
        self.fields = {
            "support_item": torch.where(mask, inter[train_dataset.iid_field][rows], 0),
            "support_mask": mask,
        }
        label = config["LABEL_FIELD"]
        if label in inter:
            self.fields["support_label"] = torch.where(mask, inter[label][rows].float(), 0.0)
        elif config["meta_feedback"] == "implicit":  # implicit data without a label column
            self.fields["support_label"] = mask.float()
        if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
            sequence = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
            length = config["ITEM_LIST_LENGTH_FIELD"]
            self.fields[f"support_{sequence}"] = torch.where(
                mask.unsqueeze(-1), inter[sequence][rows], 0
            )
            self.fields[f"support_{length}"] = torch.where(mask, inter[length][rows], 1)
        elif config["meta_feedback"] == "implicit":
            k = config["task_neg_sample_num"]
            self.fields["support_neg_item"] = sample_negatives(
                self.fields["support_item"],
                mask,
                mask.shape[1] * k,
                train_dataset.item_num,
                seeded_generator(config["seed"], "support_negatives"),
            )
            self.fields["support_neg_mask"] = mask.repeat_interleave(k, dim=1)
        self.num_users = int(mask.any(dim=1).sum())
        self.padding = {name: 0 for name in self.fields}  # a masked slot's value
        if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
            self.padding[f"support_{config['ITEM_LIST_LENGTH_FIELD']}"] = 1

    def sizes(self):
        """Each user's number of support rows: ``[n_users]``."""
        return self.fields["support_mask"].sum(dim=1)

    def limited(self, shots):
        """A view of the table with each user's support cut to their first ``shots`` rows (in
        :func:`support_slots`'s order); the other slots are masked and hold padding.

        NOTE: slots keep their places and the width stays ``S``, so for a user with at most
        ``shots`` support rows the fields are the table's own, bit for bit. Implicit negatives
        are those drawn for the kept rows (drawn outside every support item, the cut ones too).
        """
        keep = self.fields["support_mask"] & (self.shot < shots)  # [n_users, S]
        view = copy.copy(self)
        view.fields = {}
        for name, table in self.fields.items():
            line = keep
            if table.shape[1] != keep.shape[1]:  # negatives: [n_users, S * k]
                line = keep.repeat_interleave(table.shape[1] // keep.shape[1], dim=1)
            if table.dtype == torch.bool:
                view.fields[name] = table & line
            else:
                line = line.reshape(*line.shape, *[1] * (table.dim() - 2))
                view.fields[name] = torch.where(line, table, self.padding[name])
        view.num_users = int(keep.any(dim=1).sum())
        return view

    def add_to(self, interaction):
        """Add each row's user's support fields to ``interaction`` (``[B, S]``, ``[B, S, L]``)."""
        users = interaction[self.user_field]
        interaction.update(Interaction({name: table[users] for name, table in self.fields.items()}))


class SupportMixin:
    """Put in front of a RecBole evaluation loader: every batch's interaction also carries the
    support rows of its users (:class:`SupportTable`'s fields), so a meta-learner adapts on what
    the batch brings, as it does in meta-training."""

    def __init__(self, config, dataset, sampler, shuffle=False, support=None):
        self.support = support
        super().__init__(config, dataset, sampler, shuffle=shuffle)

    @contextlib.contextmanager
    def support_limit(self, shots):
        """Within the block, batches carry each user's first ``shots`` support rows only
        (:meth:`SupportTable.limited`)."""
        full = self.support
        self.support = full.limited(shots)
        try:
            yield self
        finally:
            self.support = full

    def collate_fn(self, index):
        batch = super().collate_fn(index)
        if self.support is not None:
            self.support.add_to(batch[0] if isinstance(batch, tuple) else batch)
        return batch


@functools.cache
def with_support(loader_class):
    """``loader_class`` (a RecBole evaluation loader) with :class:`SupportMixin` in front."""
    if issubclass(loader_class, SupportMixin):
        return loader_class
    return type(f"Support{loader_class.__name__}", (SupportMixin, loader_class), {})
