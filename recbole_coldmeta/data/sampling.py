"""Negative sampling for implicit-feedback tasks (meta-training batches and cold users' support)."""

import torch

from recbole_coldmeta.utils import DataError


def sample_negatives(exclude, exclude_mask, num, n_items, generator, tries=20):
    """``num`` negative items per task, uniform over items ``1 .. n_items - 1``, none of them
    among the task's ``exclude`` items (resampled where they clash).

    Args:
        exclude: ``[T, E]`` the task's items (its user's known interactions).
        exclude_mask: ``[T, E]`` bool, True for real entries.
        num: negatives per task.
        n_items: number of item ids (id 0 is padding).
        generator: a seeded ``torch.Generator``.

    Returns:
        ``[T, num]`` item ids.

    Raises:
        DataError: a task's user interacted with (almost) every item, so no negative was found.
    """
    negatives = torch.randint(1, n_items, (len(exclude), num), generator=generator)
    for _ in range(tries):
        clash = (negatives.unsqueeze(-1) == exclude.unsqueeze(1)) & exclude_mask.unsqueeze(1)
        clash = clash.any(dim=-1)
        if not clash.any():
            return negatives
        negatives[clash] = torch.randint(1, n_items, (int(clash.sum()),), generator=generator)
    raise DataError(
        f"Could not sample negatives outside a user's items in {tries} tries: some user has "
        f"interacted with nearly all {n_items - 1} items. Use meta_feedback: explicit or a "
        f"dataset with more items."
    )
