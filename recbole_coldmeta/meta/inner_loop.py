"""The one inner loop of recbole_coldmeta: functional, batched over tasks.

Every meta-learner adapts through :func:`adapt`. Models differ in *which* parameters adapt and in
their inner loss, never in how adaptation is done.

Parameters of a task batch are an explicit dict ``{name: tensor [T, ...]}``: the meta-parameter
expanded over the ``T`` tasks (:func:`task_params`). The module is never mutated and never
deep-copied; forward passes go through :func:`torch.func.functional_call` vectorised over tasks
with :func:`torch.func.vmap` (:func:`batched_call`). One ``torch.autograd.grad`` call on the sum
of the per-task losses gives every task its own gradient (:func:`task_gradients`), because task
``t``'s loss depends only on slice ``t`` of the expanded parameters.

Shapes: ``T`` tasks, ``S`` support rows, ``Q`` query rows, ``D`` dimension.
"""

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

Params = dict


def task_params(module: nn.Module, names, num_tasks: int, keep_graph: bool = True) -> Params:
    """The named parameters of ``module`` expanded to ``[T, ...]``: each task's starting point.

    Args:
        module: the module that owns the parameters (names are relative to it).
        names: parameter names to adapt, e.g. ``["0.weight", "0.bias"]``.
        num_tasks: ``T``.
        keep_graph: ``True`` in meta-training (the adapted parameters stay differentiable
            functions of the meta-parameters). ``False`` at evaluation: the start is detached, so
            adaptation cannot touch the meta-parameters or build a graph back to them.

    Returns:
        dict: ``{name: tensor [T, *shape]}`` (expanded views, no copies).
    """
    own = dict(module.named_parameters())
    missing = [name for name in names if name not in own]
    assert not missing, f"{type(module).__name__} has no parameters {missing}"
    params = {}
    with torch.enable_grad():
        for name in names:
            start = own[name] if keep_graph else own[name].detach().requires_grad_()
            params[name] = start.unsqueeze(0).expand(num_tasks, *start.shape)
    return params


def batched_call(module: nn.Module, params: Params, *args, in_dims=0, randomness="different"):
    """``module(*args)`` for every task at once, task ``t`` using slice ``t`` of ``params``.

    Parameters of ``module`` that are not in ``params`` are shared by all tasks.

    Args:
        module: the module to call; ``params`` names are relative to it.
        params: ``{name: tensor [T, ...]}`` from :func:`task_params` or :func:`adapt`.
        *args: inputs; by default each has a leading task dimension ``T``.
        in_dims: ``0`` for all inputs, or a tuple with ``0`` (per task) or ``None`` (shared)
            for each input.
        randomness: vmap's randomness mode (dropout draws differ between tasks by default).

    Returns:
        The module's output with a leading task dimension ``T``.
    """
    if not isinstance(in_dims, tuple):
        in_dims = (in_dims,) * len(args)

    def call_one(task_params_, *task_args):
        return functional_call(module, task_params_, task_args, strict=False)

    return vmap(call_one, in_dims=(0, *in_dims), randomness=randomness)(params, *args)


def adapt(
    params: Params,
    loss_fn: Callable[[Params], Tensor],
    steps: int,
    lr,
    first_order: bool = False,
) -> Params:
    """Take ``steps`` gradient steps from ``params`` on ``loss_fn``, for all tasks at once.

    Args:
        params: ``{name: tensor [T, ...]}``, the tasks' starting parameters.
        loss_fn: ``params -> tensor [T]``, each task's inner (support) loss.
        steps: number of inner gradient steps (0 returns ``params`` unchanged).
        lr: inner learning rate: a float, a tensor (e.g. a learnable Meta-SGD rate), or a
            mapping from parameter name to either.
        first_order: drop second-order terms (FOMAML): inner gradients are computed without a
            graph, so the outer gradient flows only through the identity path of each update.

    Returns:
        dict: the adapted parameters ``{name: tensor [T, ...]}``. When the start is connected to
        the meta-parameters they are differentiable functions of them.

    NOTE: gradients are enabled inside, so evaluation code running under ``torch.no_grad()``
    (as RecBole's ``Trainer.evaluate`` does) can adapt without further ado.
    """
    rates = {name: lr[name] if isinstance(lr, Mapping) else lr for name in params}
    with torch.enable_grad():
        for _ in range(steps):
            losses = loss_fn(params)
            create_graph = not first_order and any(p.requires_grad for p in params.values())
            grads = task_gradients(losses, params, create_graph=create_graph)
            params = {name: params[name] - rates[name] * grads[name] for name in params}
    return params


def task_gradients(
    losses: Tensor, params: Params, create_graph: bool = False, retain_graph: bool = False
) -> Params:
    """Each task's gradient of its own loss: ``{name: [T, ...]}``, one autograd call.

    Args:
        losses: ``[T]``, task ``t``'s loss depending only on slice ``t`` of ``params`` (so the
            gradient of ``losses.sum()`` w.r.t. slice ``t`` is task ``t``'s own gradient).
        params: ``{name: tensor [T, ...]}`` that ``losses`` were computed from.
        create_graph: keep the graph of the gradients (second-order MAML).
        retain_graph: keep the graph of ``losses`` for a later backward (MAMO reads its query
            gradients before the trainer back-propagates the same loss); implied by
            ``create_graph``.
    """
    assert losses.dim() == 1, f"expected one loss per task, got a tensor of shape {losses.shape}"
    names = tuple(params)
    with torch.enable_grad():
        grads = torch.autograd.grad(
            losses.sum(),
            [params[name] for name in names],
            create_graph=create_graph,
            retain_graph=retain_graph or create_graph,
        )
    return dict(zip(names, grads))
