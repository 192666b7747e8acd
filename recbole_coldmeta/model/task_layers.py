"""Building blocks of task-collaborative meta-learning (CCML): the candidate pool of meta-train
tasks, candidate ranking by gradients and rating prototypes, the cross-task contrastive loss, and
LightGCN propagation over one small graph per task.

Shapes: ``T`` primary tasks, ``N`` meta-train tasks, ``L`` a task's rows, ``P`` candidates,
``R`` rating levels or graph rows, ``D`` dimension.
"""

import torch
import torch.nn.functional as F
from torch import nn


class TaskPool(nn.Module):
    """The meta-train tasks that CCML draws collaborators from, as padded tables.

    Built from the data side's index of rows by user (``dataset.rows_by_user``). Buffers, not
    saved with the parameters: ``user [N]``, ``item`` / ``label`` / ``mask [N, L]``,
    ``task_of_user [n_users]`` (each user's task, -1 for none) and ``aux_order [N, L]`` (a fixed
    seeded order of each task's rows, real rows first).

    Args:
        rows: a :class:`~recbole_coldmeta.data.user_rows.UserRows` of the meta-train rows.
        items, labels: ``[rows]`` item ids and ratings of the dataset's rows.
        n_users: number of user ids.
        generator: a seeded ``torch.Generator`` for ``aux_order``.
    """

    def __init__(self, rows, items, labels, n_users, generator):
        super().__init__()
        chosen, mask = rows.padded()  # [N, L]
        self.register_buffer("user", rows.users, persistent=False)
        self.register_buffer("item", torch.where(mask, items[chosen], 0), persistent=False)
        self.register_buffer(
            "label", torch.where(mask, labels[chosen].float(), 0.0), persistent=False
        )
        self.register_buffer("mask", mask, persistent=False)
        task_of_user = torch.full((n_users,), -1, dtype=torch.long)
        task_of_user[rows.users] = torch.arange(len(rows.users))
        self.register_buffer("task_of_user", task_of_user, persistent=False)
        order = torch.argsort(torch.rand(mask.shape, generator=generator) + (~mask) * 2.0, dim=1)
        self.register_buffer("aux_order", order, persistent=False)
        self._item_sets = None  # [N, n_items], built on first use (depends on the data only)

    def __len__(self):
        return len(self.user)

    def rows(self, tasks, size, generator=None):
        """``size`` rows of each of ``tasks [...]``: items, labels, mask, users ``[..., K]``.

        Random rows (real rows first) drawn from ``generator``, or, without one, the first
        ``size`` rows of the fixed ``aux_order``.
        """
        width = self.mask.shape[1]
        size = min(size, width)
        if generator is not None:
            keys = torch.rand(*tasks.shape, width, generator=generator).to(tasks.device)
            keys = keys + (~self.mask[tasks]) * 2.0  # real rows first
            slots = torch.argsort(keys, dim=-1)[..., :size]
        else:
            slots = self.aux_order[tasks][..., :size]
        items = self.item[tasks].gather(-1, slots)
        labels = self.label[tasks].gather(-1, slots)
        mask = self.mask[tasks].gather(-1, slots)
        users = self.user[tasks].unsqueeze(-1).expand_as(items)
        return items, labels, mask, users

    def jaccard(self, items, mask, n_items):
        """Jaccard overlap ``[T, N]`` of each primary task's items ``[T, S]`` with each task's."""
        if self._item_sets is None:
            self._item_sets = item_sets(self.item, self.mask, n_items)
        mine, theirs = item_sets(items, mask, n_items), self._item_sets
        overlap = mine @ theirs.T
        union = mine.sum(1, keepdim=True) + theirs.sum(1).unsqueeze(0) - overlap
        return overlap / union.clamp(min=1.0)

    def exclude_own(self, scores, users):
        """``scores [T, N]`` with each primary user's own task (if any) at ``-inf``."""
        own = self.task_of_user[users]
        scores[own >= 0, own[own >= 0]] = float("-inf")
        return scores


def rating_prototypes(item_vec, labels, mask, levels):
    """Per rating level, the mean item vector of each task's rows: ``[T, R, D]``.

    Args:
        item_vec: ``[T, S, D]``; labels, mask: ``[T, S]``; levels: ``[R]`` the rating levels.
    """
    level = ((labels.unsqueeze(-1) == levels) & mask.unsqueeze(-1)).float()  # [T, S, R]
    total = torch.einsum("tsr,tsd->trd", level, item_vec)
    return total / level.sum(dim=1).unsqueeze(-1).clamp(min=1.0)


def item_sets(items, mask, n_items):
    """``[T, n_items]`` indicator of each task's items ``[T, S]`` (real rows only)."""
    sets = torch.zeros(len(items), n_items, device=items.device)
    return sets.scatter_(1, items, mask.float()).clamp(max=1.0)


def profile_agreement(mine, theirs):
    """On how many profile fields each primary user agrees with each task's user: ``[T, N]``.

    Args:
        mine: per field, the primary users' values ``[T]`` (or ``[T, K]`` token sequences,
            which agree when equal as a whole).
        theirs: per field, the task users' values ``[N]`` (or ``[N, K]``).
    """
    scores = torch.zeros(len(mine[0]), len(theirs[0]), device=mine[0].device)
    for a, b in zip(mine, theirs):
        equal = a.unsqueeze(1) == b.unsqueeze(0)
        scores += (equal.all(dim=-1) if a.dim() > 1 else equal).float()
    return scores


def cosine_rank(primary, candidates):
    """Cosine similarity of each primary task's vector to each of its candidates.

    Args:
        primary: ``[T, G]``.
        candidates: ``[T, P, G]``.

    Returns:
        ``[T, P]`` cosine similarities.
    """
    return F.cosine_similarity(primary.unsqueeze(1), candidates, dim=-1)


def prototype_scores(primary, candidates):
    r"""Rating-prototype agreement ``ω = Σ_{i<j} cos(p_i, q_j)·(j − i)``.

    ``p_i`` is the primary task's prototype of rating level ``i`` (the mean representation of its
    support items rated ``i``), ``q_j`` the candidate's; a pair with a missing (all-zero)
    prototype contributes 0.

    Args:
        primary: ``[T, R, D]`` prototypes of the primary tasks (``R`` rating levels, ascending).
        candidates: ``[T, K, R, D]`` prototypes of each primary's ``K`` candidates.

    Returns:
        ``[T, K]`` scores.
    """
    levels = primary.shape[1]
    p = F.normalize(primary, dim=-1).unsqueeze(1).unsqueeze(3)  # [T, 1, R, 1, D]
    q = F.normalize(candidates, dim=-1).unsqueeze(2)  # [T, K, 1, R, D]
    cosine = (p * q).sum(dim=-1)  # [T, K, R(i), R(j)]
    steps = torch.arange(levels, device=primary.device)
    weight = (steps.view(1, -1) - steps.view(-1, 1)).clamp(min=0).to(primary.dtype)  # (j-i)+
    return (cosine * weight).sum(dim=(-1, -2))


def info_nce(anchor, positives, negatives, temperature):
    """InfoNCE pulling ``anchor`` towards each positive and away from the negatives.

    Args:
        anchor: ``[T, D]``.
        positives: ``[T, B, D]``.
        negatives: ``[T, N, D]``.
        temperature: cosine similarities are divided by it.

    Returns:
        ``[T]``: mean over the positives of ``-log(exp(s+) / (exp(s+) + Σ exp(s-)))``.
    """
    anchor = F.normalize(anchor, dim=-1).unsqueeze(1)  # [T, 1, D]
    positive = (anchor * F.normalize(positives, dim=-1)).sum(-1) / temperature  # [T, B]
    negative = (anchor * F.normalize(negatives, dim=-1)).sum(-1) / temperature  # [T, N]
    negative = negative.unsqueeze(1).expand(-1, positive.shape[1], -1)  # [T, B, N]
    logits = torch.cat([positive.unsqueeze(-1), negative], dim=-1)  # [T, B, 1 + N]
    return -(positive - torch.logsumexp(logits, dim=-1)).mean(dim=1)


def propagate_task_graphs(user_nodes, item_rows, row_user, row_item, valid, layers):
    r"""LightGCN propagation on one small user-item graph per task, all tasks at once.

    Task ``t``'s graph has ``U`` user nodes and one edge per valid row ``r`` (user
    ``row_user[r]`` rated item ``row_item[t, r]``); rows with the same item id are the same item
    node. Each layer is ``e_u ← Σ_i e_i / sqrt(|N(u)| |N(i)|)`` and
    ``e_i ← Σ_u e_u / sqrt(|N(i)| |N(u)|)``; the result is the mean over layers ``0..L``
    (He et al., SIGIR 2020). An item node's vector is kept per row (equal across its rows).

    Args:
        user_nodes: ``[T, U, D]`` layer-0 user vectors.
        item_rows: ``[T, R, D]`` layer-0 vector of each row's item.
        row_user: ``[R]`` user node of each row (the same for every task).
        row_item: ``[T, R]`` item id of each row.
        valid: ``[T, R]`` float, 1 for real rows (edges).
        layers: ``L``.

    Returns:
        tuple: ``[T, U, D]`` and ``[T, R, D]`` refined vectors.
    """
    same = (row_item.unsqueeze(2) == row_item.unsqueeze(1)).float()
    same = same * valid.unsqueeze(2) * valid.unsqueeze(1)  # [T, R, R]: rows of one item node
    owner = F.one_hot(row_user, user_nodes.shape[1]).float().unsqueeze(0) * valid.unsqueeze(-1)
    user_degree = owner.sum(dim=1)  # [T, U]
    row_user_degree = torch.einsum("tru,tu->tr", owner, user_degree)
    weight = valid * torch.rsqrt((same.sum(-1) * row_user_degree).clamp(min=1.0))  # [T, R]
    users, items = user_nodes, item_rows
    user_sum, item_sum = users, items
    for _ in range(layers):
        users, items = (
            torch.einsum("tru,tr,trd->tud", owner, weight, items),
            torch.einsum("trs,ts,tsd->trd", same, weight, owner @ users),
        )
        user_sum, item_sum = user_sum + users, item_sum + items
    return user_sum / (layers + 1), item_sum / (layers + 1)
