"""Support rows in evaluation batches: the one route by which a cold user's support set reaches a
model, in evaluation as in meta-training (:class:`MetaTaskDataLoader`'s ``support_*`` fields).

Shapes: ``n_users`` user ids, ``S`` the largest support set of the split, ``B`` rows of a batch,
``L`` sequence length, ``k`` negatives per support row.
"""

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


class SupportTable:
    """Every valid/test user's support set, read once from the split's train part.

    Holds, per user id (``[n_users, S]``; users without support have empty lines):
    ``support_item``, ``support_mask`` and, on rating data, ``support_label`` (the
    ``LABEL_FIELD`` values). With ``meta_feedback: implicit`` (non-sequential):
    ``support_neg_item`` / ``support_neg_mask`` ``[n_users, S * k]``, ``k =
    task_neg_sample_num`` fixed negatives per support row, none of them a support item of the user
    (one seeded draw, stream ``support_negatives``). On a sequential dataset: also
    ``support_<list field>`` ``[n_users, S, L]`` and ``support_<length field>`` (1 on padding);
    ``support_item`` is then each row's target item.

    NOTE: every line is padded to the same ``S`` (the split's largest support set), not to the
    largest of a batch: a user's support tensors then do not depend on which users share their
    batch, so adaptation gives the same numbers whatever the batching.
    """

    def __init__(self, config, train_dataset):
        index = UserRows.of_roles(train_dataset, SUPPORT_ROLES)
        rows, mask = index.padded(train_dataset.user_num)  # [n_users, S]
        inter = train_dataset.inter_feat
        self.user_field = train_dataset.uid_field
        self.fields = {
            "support_item": torch.where(mask, inter[train_dataset.iid_field][rows], 0),
            "support_mask": mask,
        }
        label = config["LABEL_FIELD"]
        if label in inter:
            self.fields["support_label"] = torch.where(mask, inter[label][rows].float(), 0.0)
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
