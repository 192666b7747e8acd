"""Naive reference inner loops: what the speed benchmark races against, and test oracles.

These are REFERENCE implementations. No model uses them: every model adapts through the one
inner loop, :func:`recbole_coldmeta.meta.adapt`. They exist for two readers only:

- the speed benchmark (:mod:`recbole_coldmeta.benchmarks.speed`), which times them against
  ``adapt`` on MeLU (:func:`per_task_step`, :func:`deep_copy_step`);
- the property tests of ``adapt`` (``tests/meta/test_reference_oracles.py``), which check that
  the batched loop computes exactly what these obvious loops compute (:func:`per_task_adapt`,
  :func:`deep_copy_adapt`).

Two patterns, written as plainly as possible:

- per task, its own parameter dict, a forward through ``functional_call`` and
  ``torch.autograd.grad`` (``create_graph`` for second order), one task after the other;
- per task, a ``copy.deepcopy`` of the model and a local ``torch.optim.SGD`` on the adapted
  parameters, then the copy's query-loss gradients added into the meta-model's ``.grad``: the
  pattern of MeLU's and MML's original code, first-order by construction (FOMAML).

Shapes: ``T`` tasks, ``S`` support rows, ``Q`` query rows, ``D`` dimension; ``R`` rows of one
task.
"""

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call


def per_task_adapt(
    params: dict, loss_fn: Callable[[dict], Tensor], steps: int, lr: float, first_order: bool
) -> dict:
    """``steps`` gradient steps of ONE task from ``params`` on ``loss_fn``.

    Args:
        params: ``{name: tensor}`` (unbatched), the task's starting parameters.
        loss_fn: ``params -> scalar``, the task's support loss.
        steps: inner steps.
        lr: inner learning rate.
        first_order: inner gradients without a graph (FOMAML).

    Returns:
        dict: the adapted ``{name: tensor}``, differentiable functions of the start.
    """
    for _ in range(steps):
        loss = loss_fn(params)
        grads = torch.autograd.grad(loss, list(params.values()), create_graph=not first_order)
        params = {name: p - lr * g for (name, p), g in zip(params.items(), grads)}
    return params


def deep_copy_adapt(
    model: nn.Module,
    names,
    support_loss_fn: Callable[[nn.Module], Tensor],
    query_loss_fn: Callable[[nn.Module], Tensor],
    steps: int,
    lr: float,
    scale: float = 1.0,
    shared: dict | None = None,
):
    """One task the original way: deep copy, local SGD, query gradients added to ``model``.

    ``model`` itself is not changed; its ``.grad`` gains ``grad(query loss / scale)`` at the
    copy's adapted parameters (first order: the inner steps are not differentiated through).

    Args:
        model: the meta-model.
        names: names (relative to ``model``) of the parameters the local SGD updates.
        support_loss_fn: ``module -> scalar``, the task's support loss on a module.
        query_loss_fn: ``module -> scalar``, the task's query loss on a module.
        steps: local SGD steps.
        lr: local SGD learning rate.
        scale: the query loss is divided by it before ``backward`` (the number of tasks, for a
            mean over tasks).
        shared: ``copy.deepcopy`` memo: ``{id(obj): obj}`` of objects the copy shares rather
            than copies (e.g. large buffers).

    Returns:
        tuple: the query loss (scalar tensor, detached) and the copy's adapted parameters
        ``{name: tensor}`` (detached).
    """
    local = copy.deepcopy(model, memo=dict(shared or {}))
    local.zero_grad(set_to_none=True)
    own = dict(local.named_parameters())
    local_optimizer = torch.optim.SGD([own[name] for name in names], lr=lr)
    for _ in range(steps):
        local_optimizer.zero_grad()
        support_loss_fn(local).backward()
        local_optimizer.step()
    local.zero_grad(set_to_none=True)
    query_loss = query_loss_fn(local)
    (query_loss / scale).backward()
    for meta_param, local_param in zip(model.parameters(), local.parameters()):
        if local_param.grad is None:
            continue
        if meta_param.grad is None:
            meta_param.grad = local_param.grad
        else:
            meta_param.grad += local_param.grad
    return query_loss.detach(), {name: own[name].detach() for name in names}


def rate_rows(model, params, users, items):
    """MeLU's predicted ratings of rows ``[R]`` without vmap.

    Args:
        model: a MeLU.
        params: decision-layer parameters ``{name: tensor}`` (unbatched) for
            ``functional_call``, or ``None`` for the module's own.
        users: ``[R]`` user ids, or ``[1]`` for one user's rows.
        items: ``[R]`` item ids.

    Returns:
        ``[R]`` predicted ratings.
    """
    users = users.expand(len(items))  # [1 or R] -> [R]
    x = model.features(users.unsqueeze(0), items.unsqueeze(0)).squeeze(0)  # [1, R, D] -> [R, D]
    if params is None:
        out = model.decision(x)
    else:
        out = functional_call(model.decision, params, (x,), strict=False)
    return out.squeeze(-1) + model.global_mean  # [R, 1] -> [R]


def _task_rows(batch, t, prefix):
    """Task ``t``'s real ``prefix`` (support/query) rows: ``items [R]`` and ``labels [R]``."""
    mask = batch[f"{prefix}_mask"][t]
    return batch[f"{prefix}_item"][t][mask], batch[f"{prefix}_label"][t][mask]


def per_task_step(model, batch):
    """MeLU's meta-loss, adapting one task at a time (:func:`per_task_adapt`); ``backward`` done.

    The same math as ``model.calculate_loss(batch)``; the meta-gradient is left in ``.grad``.

    Returns:
        float: the mean query loss over the batch's tasks.
    """
    users = batch[model.USER_ID]
    own = dict(model.decision.named_parameters())
    start = {name: own[name] for name in model.adapted_names}
    losses = []
    for t in range(len(users)):
        user = users[t : t + 1]
        items, labels = _task_rows(batch, t, "support")

        def support_loss(params, user=user, items=items, labels=labels):
            return F.mse_loss(rate_rows(model, params, user, items), labels)

        params = per_task_adapt(
            start, support_loss, model.local_steps, model.local_lr, model.first_order
        )
        items, labels = _task_rows(batch, t, "query")
        losses.append(F.mse_loss(rate_rows(model, params, user, items), labels))
    loss = torch.stack(losses).mean()
    loss.backward()
    return loss.item()


def deep_copy_step(model, batch):
    """MeLU's first-order meta-loss the original way: a deep copy and a local SGD per task.

    Buffers (feature tables, evaluation support sets) are shared with the copies, not copied:
    only parameters are, as in the original code whose models hold no such buffers. The
    meta-gradient (mean over tasks) is left in ``.grad``; the parameters are not changed.

    Returns:
        float: the mean query loss over the batch's tasks.
    """
    users = batch[model.USER_ID]
    num_tasks = len(users)
    shared_buffers = {id(buffer): buffer for buffer in model.buffers()}
    names = [f"decision.{name}" for name in model.adapted_names]
    total = 0.0
    for t in range(num_tasks):
        user = users[t : t + 1]
        support_items, support_labels = _task_rows(batch, t, "support")
        query_items, query_labels = _task_rows(batch, t, "query")

        def support_loss(local, user=user, items=support_items, labels=support_labels):
            return F.mse_loss(rate_rows(local, None, user, items), labels)

        def query_loss(local, user=user, items=query_items, labels=query_labels):
            return F.mse_loss(rate_rows(local, None, user, items), labels)

        loss, _ = deep_copy_adapt(
            model,
            names,
            support_loss,
            query_loss,
            model.local_steps,
            model.local_lr,
            scale=num_tasks,
            shared=shared_buffers,
        )
        total += loss.item()
    return total / num_tasks
