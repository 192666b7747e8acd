"""Property tests of the shared inner loop (learn2learn-style behaviour tests)."""

import copy
import gc
import sys

import pytest
import torch
from torch import nn

from recbole_coldmeta.meta import adapt, batched_call, pad_groups, task_gradients, task_params

T, S, D = 4, 6, 3


def _tiny_regression(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(D, 5), nn.Tanh(), nn.Linear(5, 1))
    x = torch.randn(T, S, D)
    y = torch.randn(T, S)
    return net, x, y


def _support_loss(net, x, y):
    def loss_fn(params):
        prediction = batched_call(net, params, x).squeeze(-1)  # [T, S]
        return ((prediction - y) ** 2).mean(dim=1)  # [T]

    return loss_fn


def test_support_loss_falls_after_adapt():
    net, x, y = _tiny_regression()
    names = [name for name, _ in net.named_parameters()]
    loss_fn = _support_loss(net, x, y)
    start = task_params(net, names, T)
    adapted = adapt(start, loss_fn, steps=5, lr=0.1)
    assert torch.all(loss_fn(adapted) < loss_fn(start))


def test_task_gradients_can_keep_the_graph_for_a_later_backward():
    net, x, y = _tiny_regression()
    params = task_params(net, [name for name, _ in net.named_parameters()], T)
    losses = _support_loss(net, x, y)(params)
    grads = task_gradients(losses, params, retain_graph=True)
    losses.sum().backward()  # the same graph, once more
    torch.testing.assert_close(net[0].weight.grad, grads["0.weight"].sum(dim=0))
    losses = _support_loss(net, x, y)(params)
    task_gradients(losses, params)
    with pytest.raises(RuntimeError, match="second time"):  # without it the graph is freed
        losses.sum().backward()


def test_tasks_adapt_independently():
    net, x, y = _tiny_regression()
    names = ["2.weight", "2.bias"]
    together = adapt(task_params(net, names, T), _support_loss(net, x, y), steps=2, lr=0.1)
    for t in range(T):
        alone = adapt(
            task_params(net, names, 1),
            _support_loss(net, x[t : t + 1], y[t : t + 1]),
            steps=2,
            lr=0.1,
        )
        for name in names:
            torch.testing.assert_close(together[name][t], alone[name][0])


def test_first_order_equals_hand_computation():
    torch.manual_seed(1)
    net = nn.Linear(D, 1, bias=False)
    x, y = torch.randn(T, S, D), torch.randn(T, S)
    lr = 0.05
    adapted = adapt(task_params(net, ["weight"], T), _support_loss(net, x, y), 1, lr, True)
    w = net.weight.detach()[0]  # [D]
    residual = x @ w - y  # [T, S]
    grad = 2.0 / S * torch.einsum("ts,tsd->td", residual, x)  # [T, D]
    torch.testing.assert_close(adapted["weight"][:, 0, :], w - lr * grad)


def test_first_order_builds_no_second_order_graph():
    net, x, y = _tiny_regression()
    params = task_params(net, ["2.weight"], T)
    calls = []

    def loss_fn(p):
        loss = _support_loss(net, x, y)(p)
        calls.append(loss)
        return loss

    first = adapt(params, loss_fn, steps=1, lr=0.1, first_order=True)
    grad_of_update = first["2.weight"] - params["2.weight"]
    assert grad_of_update.grad_fn is not None  # still connected through the identity path...
    (meta_grad,) = torch.autograd.grad(first["2.weight"].sum(), net[2].weight)
    torch.testing.assert_close(meta_grad, torch.full_like(meta_grad, float(T)))  # ...only


def test_second_order_meta_gradient_differs_from_first_order_and_is_nonzero():
    net, x, y = _tiny_regression()
    names = [name for name, _ in net.named_parameters()]
    query_x, query_y = torch.randn(T, S, D), torch.randn(T, S)
    grads = {}
    for first_order in (True, False):
        adapted = adapt(task_params(net, names, T), _support_loss(net, x, y), 2, 0.1, first_order)
        query_loss = _support_loss(net, query_x, query_y)(adapted).mean()
        grads[first_order] = torch.autograd.grad(query_loss, net[0].weight)[0]
    assert grads[False].abs().sum() > 0 and grads[True].abs().sum() > 0
    assert not torch.allclose(grads[True], grads[False])


def test_evaluation_adapts_under_no_grad_and_leaves_meta_parameters_untouched():
    net, x, y = _tiny_regression()
    before = copy.deepcopy(net.state_dict())
    names = [name for name, _ in net.named_parameters()]
    with torch.no_grad():
        adapted = adapt(
            task_params(net, names, T, keep_graph=False), _support_loss(net, x, y), 3, 0.1
        )
    assert all(net.get_parameter(n).grad is None for n in names)
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name])
    assert not torch.allclose(adapted["0.weight"][0], net[0].weight)


def test_per_parameter_and_tensor_learning_rates():
    net, x, y = _tiny_regression()
    names = ["2.weight", "2.bias"]
    log_lr = nn.Parameter(torch.tensor(-2.0))
    adapted = adapt(
        task_params(net, names, T),
        _support_loss(net, x, y),
        1,
        {"2.weight": log_lr.exp(), "2.bias": 0.0},
    )
    torch.testing.assert_close(adapted["2.bias"], net[2].bias.expand(T, 1))
    (lr_grad,) = torch.autograd.grad(_support_loss(net, x, y)(adapted).sum(), log_lr)
    assert lr_grad != 0


def live_tensor_bytes():
    """Bytes of the distinct storages of every tensor the garbage collector can reach."""
    gc.collect()
    storages = {}
    for obj in gc.get_objects():
        if issubclass(type(obj), torch.Tensor):  # not isinstance: it reads __class__ of proxies
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def memory_growth(iterations=50):
    """Growth of :func:`live_tensor_bytes` over ``iterations`` meta-training steps (adapt, query
    loss, backward, optimizer step) of a small network, after one warm-up step."""
    net, x, y = _tiny_regression()
    names = [name for name, _ in net.named_parameters()]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)

    def step():
        adapted = adapt(task_params(net, names, T), _support_loss(net, x, y), 2, 0.1)
        optimizer.zero_grad()
        _support_loss(net, x, y)(adapted).mean().backward()
        optimizer.step()

    step()  # creates the .grad tensors
    before = live_tensor_bytes()
    for _ in range(iterations):
        step()
    assert all(p.grad is not None and p.grad.grad_fn is None for p in net.parameters())
    return live_tensor_bytes() - before


#: Bytes of growth allowed over the 50 steps: less than one step's adapted parameters leaked
#: (T = 4 tasks x 26 floats = 416 bytes).
MEMORY_BOUND = 256


def test_memory_is_flat_across_iterations():
    assert memory_growth() < MEMORY_BOUND


def test_memory_measure_detects_a_leaking_adapt(monkeypatch):
    kept = []

    def leaking_adapt(*args, **kwargs):
        adapted = adapt_without_leak(*args, **kwargs)
        kept.append(adapted)
        return adapted

    adapt_without_leak = adapt
    monkeypatch.setattr(sys.modules[__name__], "adapt", leaking_adapt)
    assert memory_growth() > MEMORY_BOUND
    assert len(kept) == 51


def test_pad_groups():
    group = torch.tensor([2, 0, 2, 1, 0, 2])
    index, mask = pad_groups(group, 4)
    assert index.shape == (4, 3)
    assert index[0][mask[0]].tolist() == [1, 4]
    assert index[1][mask[1]].tolist() == [3]
    assert index[2][mask[2]].tolist() == [0, 2, 5]
    assert not mask[3].any()
