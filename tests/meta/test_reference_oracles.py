"""The shared inner loop equals the naive reference loops (test oracles) on a tiny MeLU-like net.

``adapt`` adapts all tasks at once on padded ``[T, S]`` rows; the oracles of
:mod:`recbole_coldmeta.benchmarks.speed.reference_loops` adapt one task at a time on its real
rows only, either through ``functional_call`` and ``torch.autograd.grad`` or (first order) on a
deep copy with a local SGD. Same adapted parameters, same meta-gradient.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from recbole_coldmeta.benchmarks.speed.reference_loops import deep_copy_adapt, per_task_adapt
from recbole_coldmeta.meta import adapt, batched_call, task_params

N_USERS, N_ITEMS, D, HIDDEN = 12, 30, 4, 8
SUPPORT_SIZES = (3, 7, 1, 5)
QUERY_SIZES = (4, 2, 6, 3)
LR = 0.3

#: Adapted names: the whole decision MLP (MeLU's default) or its last layer only.
NAME_SETS = {
    "all": ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"],
    "last": ["4.weight", "4.bias"],
}


class TinyMeLU(nn.Module):
    """User and item embeddings (meta-parameters only) feeding a decision MLP (adapted)."""

    def __init__(self):
        super().__init__()
        self.user_embedder = nn.Embedding(N_USERS, D)
        self.item_embedder = nn.Embedding(N_ITEMS, D)
        self.decision = nn.Sequential(
            nn.Linear(2 * D, HIDDEN),
            nn.Tanh(),
            nn.Linear(HIDDEN, HIDDEN),
            nn.Tanh(),
            nn.Linear(HIDDEN, 1),
        )

    def features(self, users, items):
        """``users [T]``, ``items [T, S]`` -> rows ``[T, S, 2D]``."""
        user_vec = self.user_embedder(users).unsqueeze(1).expand(-1, items.shape[1], -1)
        return torch.cat([user_vec, self.item_embedder(items)], dim=-1)


def _padded(sizes, generator):
    """Items, labels ``[T, max size]`` and mask; padding rows hold garbage, not zeros."""
    width = max(sizes)
    items = torch.randint(N_ITEMS, (len(sizes), width), generator=generator)
    labels = 5 * torch.rand(len(sizes), width, generator=generator)
    mask = torch.arange(width) < torch.tensor(sizes).unsqueeze(1)  # [T, S]
    return items, labels, mask


def _tasks(seed):
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = TinyMeLU()
    users = torch.randperm(N_USERS, generator=generator)[: len(SUPPORT_SIZES)]  # [T]
    return model, users, _padded(SUPPORT_SIZES, generator), _padded(QUERY_SIZES, generator)


def _masked_mse(prediction, labels, mask):
    """Each task's mean squared error over its real rows: ``[T, S] -> [T]``."""
    return ((prediction - labels) ** 2 * mask).sum(dim=1) / mask.sum(dim=1)


def _batched(model, users, support, query, names, steps, first_order):
    """The package's way: ``adapt`` over all tasks; per-task adapted params, summed query loss."""

    def task_losses(params, rows):
        items, labels, mask = rows
        x = model.features(users, items)  # [T, S, 2D]
        prediction = batched_call(model.decision, params, x).squeeze(-1)  # [T, S, 1] -> [T, S]
        return _masked_mse(prediction, labels, mask)  # [T]

    start = task_params(model.decision, names, len(users))
    adapted = adapt(start, lambda p: task_losses(p, support), steps, LR, first_order)
    return adapted, task_losses(adapted, query).sum()


def _real_rows(model, users, rows, t):
    """Task ``t``'s real rows: features ``[R, 2D]`` and labels ``[R]``."""
    items, labels, mask = rows
    return model.features(users[t : t + 1], items[t : t + 1, mask[t]])[0], labels[t, mask[t]]


def _per_task(model, users, support, query, names, steps, first_order):
    """The oracle: one task at a time on its real rows, through ``functional_call``."""
    own = dict(model.decision.named_parameters())
    start = {name: own[name] for name in names}

    def loss(params, x, labels):
        return F.mse_loss(functional_call(model.decision, params, (x,)).squeeze(-1), labels)

    adapted, query_loss = [], 0.0
    for t in range(len(users)):
        support_x, support_labels = _real_rows(model, users, support, t)
        query_x, query_labels = _real_rows(model, users, query, t)
        params = per_task_adapt(
            start, lambda p, x=support_x, y=support_labels: loss(p, x, y), steps, LR, first_order
        )
        adapted.append(params)
        query_loss = query_loss + loss(params, query_x, query_labels)
    return adapted, query_loss


def _meta_grad(model, loss):
    """Gradient of ``loss`` w.r.t. every meta-parameter (embeddings and decision MLP)."""
    return torch.autograd.grad(loss, list(model.parameters()))


def _assert_grads_close(actual, expected):
    names = [name for name, _ in TinyMeLU().named_parameters()]
    for name, a, e in zip(names, actual, expected, strict=True):
        torch.testing.assert_close(a, e, atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("names", list(NAME_SETS))
@pytest.mark.parametrize("first_order", [False, True], ids=["second_order", "first_order"])
def test_adapt_equals_the_per_task_loop(seed, steps, names, first_order):
    model, users, support, query = _tasks(seed)
    names = NAME_SETS[names]
    adapted, query_loss = _batched(model, users, support, query, names, steps, first_order)
    oracle, oracle_loss = _per_task(model, users, support, query, names, steps, first_order)
    for t, oracle_params in enumerate(oracle):
        for name in names:
            torch.testing.assert_close(
                adapted[name][t], oracle_params[name], atol=1e-6, rtol=1e-6, msg=name
            )
    torch.testing.assert_close(query_loss, oracle_loss, atol=1e-6, rtol=1e-6)
    _assert_grads_close(_meta_grad(model, query_loss), _meta_grad(model, oracle_loss))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("names", list(NAME_SETS))
def test_first_order_adapt_equals_the_deep_copy_loop(seed, steps, names):
    model, users, support, query = _tasks(seed)
    names = NAME_SETS[names]
    adapted, query_loss = _batched(model, users, support, query, names, steps, first_order=True)
    expected_grads = _meta_grad(model, query_loss)

    def loss(module, rows, t):
        x, labels = _real_rows(module, users, rows, t)
        return F.mse_loss(module.decision(x).squeeze(-1), labels)

    model.zero_grad(set_to_none=True)
    for t in range(len(users)):
        _, oracle_params = deep_copy_adapt(
            model,
            [f"decision.{name}" for name in names],
            lambda local, t=t: loss(local, support, t),
            lambda local, t=t: loss(local, query, t),
            steps,
            LR,
        )
        for name in names:
            torch.testing.assert_close(
                adapted[name][t].detach(),
                oracle_params[f"decision.{name}"],
                atol=1e-6,
                rtol=1e-6,
                msg=name,
            )
    _assert_grads_close([p.grad for p in model.parameters()], expected_grads)


def test_the_oracles_tell_first_from_second_order():
    """The comparison above can fail: first- and second-order meta-gradients differ here."""
    model, users, support, query = _tasks(0)
    names = NAME_SETS["all"]
    grads = [
        _meta_grad(model, _per_task(model, users, support, query, names, 2, first_order)[1])
        for first_order in (False, True)
    ]
    assert not all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*grads))
