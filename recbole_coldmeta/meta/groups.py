"""Task utilities: flat rows grouped into padded ``[T, Q]`` task tensors, and ranks inside groups.

Shapes: ``N`` rows, ``T`` groups (tasks), ``Q`` the largest group.
"""

import torch
from torch import Tensor


def pad_groups(group_of_row: Tensor, num_groups: int):
    """Row indices grouped and padded: the bridge from flat rows to ``[T, Q]`` task tensors.

    Args:
        group_of_row: ``[N]`` group (task) index of each row, values in ``[0, T)``.
        num_groups: ``T``.

    Returns:
        tuple: ``index [T, Q]`` (row indices, padding points at row 0) and ``mask [T, Q]`` (bool),
        with ``Q`` the largest group; rows keep their original order inside each group.
    """
    counts = torch.bincount(group_of_row, minlength=num_groups)
    width = int(counts.max()) if len(group_of_row) else 0
    order = torch.argsort(group_of_row, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(group_of_row), device=group_of_row.device) - starts[group_of_row[order]]
    index = torch.zeros(num_groups, width, dtype=torch.long, device=group_of_row.device)
    mask = torch.zeros(num_groups, width, dtype=torch.bool, device=group_of_row.device)
    index[group_of_row[order], slot] = order
    mask[group_of_row[order], slot] = True
    return index, mask


def rank_within(groups: Tensor, keys: Tensor, stable: bool = True) -> Tensor:
    """Rank ``[N]`` of each row among the rows of its group, sorted by ``keys`` (ascending).

    Args:
        groups: ``[N]`` non-negative group ids (any order).
        keys: ``[N]`` sort keys.
        stable: ties between rows of a group are broken by row order. ``False`` sorts the keys
            with torch's default sort, whose order of tied keys is unspecified (deterministic on
            a given machine): the meta-training task cut uses it because every published number
            was made with it; with random float keys, ties are rare.
    """
    order = torch.argsort(keys, stable=stable)
    order = order[torch.argsort(groups[order], stable=True)]
    counts = torch.bincount(groups)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)  # [N], sorted
    rank = torch.empty_like(groups)
    rank[order] = torch.arange(len(groups), device=groups.device) - starts
    return rank
