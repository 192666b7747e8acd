"""One data-side index of a split's rows by user.

It serves the meta-training tasks (:class:`~recbole_coldmeta.data.dataloader.MetaTaskDataLoader`),
the cold users' support sets that evaluation batches carry
(:class:`~recbole_coldmeta.data.dataloader.SupportTable`) and CCML's candidate pool (through
``ColdStartSplitMixin.rows_by_user``): "group these rows by user" is written once, here.

Shapes: ``R`` indexed rows, ``U`` users that have a row, ``W`` the largest user's row count.
"""

import torch


class UserRows:
    """The rows ``rows`` of a dataset grouped by their user, in CSR form.

    Args:
        rows: ``[R]`` row positions in the dataset's ``inter_feat``.
        users: ``[R]`` the user id of each of those rows.

    Attributes:
        users: ``[U]`` the distinct users, ascending.
        counts: ``[U]`` each user's number of rows.
        starts: ``[U]`` where each user's rows begin in :attr:`rows`.
        rows: ``[R]`` row positions sorted by user; a user's rows keep their given order.
    """

    def __init__(self, rows, users):
        order = torch.argsort(users, stable=True)
        self.rows = rows[order]
        self.users, self.counts = torch.unique_consecutive(users[order], return_counts=True)
        self.starts = torch.cumsum(self.counts, 0) - self.counts

    @classmethod
    def of_roles(cls, dataset, roles, user_field=None):
        """The rows of ``dataset`` whose ``cold_roles`` is one of ``roles``, in row order."""
        keep = torch.zeros(len(dataset.inter_feat), dtype=torch.bool)
        for role in roles:
            keep |= dataset.cold_roles == int(role)
        rows = torch.nonzero(keep).squeeze(1)
        return cls(rows, dataset.inter_feat[user_field or dataset.uid_field][rows])

    def subset(self, keep):
        """The same index restricted to the users where ``keep [U]`` is True."""
        part = UserRows.__new__(UserRows)
        part.rows = self.rows
        part.users, part.counts, part.starts = (
            self.users[keep],
            self.counts[keep],
            self.starts[keep],
        )
        return part

    def __len__(self):
        return len(self.users)

    def padded(self, num_users=None):
        """Every user's rows padded to ``W``: ``(rows [G, W], mask [G, W])``.

        ``G`` is :attr:`users`'s length (one line per indexed user, in order), or ``num_users``
        with one line per user *id* (users without rows get an empty line). Padding points at
        row 0 with ``mask`` False.
        """
        width = int(self.counts.max()) if len(self.counts) else 0
        slots = torch.arange(width)
        mask = slots.unsqueeze(0) < self.counts.unsqueeze(1)  # [U, W]
        position = torch.where(mask, self.starts.unsqueeze(1) + slots.unsqueeze(0), 0)
        rows = torch.where(mask, self.rows[position] if len(self.rows) else position, 0)
        if num_users is None:
            return rows, mask
        by_id = torch.zeros(num_users, width, dtype=torch.long)
        by_id_mask = torch.zeros(num_users, width, dtype=torch.bool)
        by_id[self.users], by_id_mask[self.users] = rows, mask
        return by_id, by_id_mask
