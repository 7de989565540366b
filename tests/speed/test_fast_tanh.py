"""FastTanh against torch.tanh: values, gradients, and that everything else passes through."""

import pytest
import torch
from torch import nn

from eoslab.speed import fast_tanh
from eoslab.speed.fast_tanh import FastTanh


def _grid(dtype):
    return torch.cat([torch.linspace(-60, 60, 2001, dtype=dtype),
                      torch.tensor([0.0, 1e-30, -1e-8, 3e-5], dtype=dtype)])


def test_values_match_tanh_to_rounding():
    for dtype, tol in ((torch.float64, 1e-15), (torch.float32, 3e-7)):
        x = _grid(dtype)
        with FastTanh():
            fast = torch.tanh(x)
            method = x.tanh()
            module = torch.nn.Tanh()(x)
        exact = torch.tanh(x.double())
        for got in (fast, method, module):
            assert got.dtype == dtype
            assert float((got.double() - exact).abs().max()) < tol


def test_gradients_match_tanh():
    x = _grid(torch.float64).requires_grad_()
    with FastTanh():
        (g_fast,) = torch.autograd.grad(torch.tanh(x).pow(2).sum(), x)
    (g_ref,) = torch.autograd.grad(torch.tanh(x).pow(2).sum(), x)
    torch.testing.assert_close(g_fast, g_ref, rtol=0, atol=1e-14)


def test_other_calls_pass_through_unchanged():
    x = torch.randn(5, dtype=torch.float64)
    ints = torch.arange(-2, 3)
    outside = torch.tanh(ints)
    with FastTanh():
        assert torch.equal(torch.tanh(x), (x * 2).sigmoid().mul(2).sub(1))  # the override
        assert torch.equal(torch.sigmoid(x), torch.special.expit(x))
        assert torch.equal(torch.tanh(ints), outside)  # integers: torch's own kernel
        out = torch.empty(5, dtype=torch.float64)
        torch.tanh(x, out=out)                       # keyword forms: torch's own kernel
    assert torch.equal(out, torch.tanh(x))


def test_the_mode_belongs_to_its_thread():
    """A plane evaluated in an app's background thread leaves other threads' tanh alone."""
    import threading

    x = torch.randn(100, dtype=torch.float64)
    entered, release = threading.Event(), threading.Event()

    def hold():
        with FastTanh():
            entered.set()
            release.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    entered.wait(10)
    try:
        assert torch.equal(torch.tanh(x), torch.ops.aten.tanh(x))
        assert not torch.equal(torch.tanh(x), (x * 2).sigmoid().mul(2).sub(1))
    finally:
        release.set()
        worker.join()


# ------------------------------------------------------------ tanh() and the Tanh module
@pytest.fixture
def everywhere(monkeypatch):
    """Both fast paths for any size, so tiny float64 problems exercise them."""
    monkeypatch.setattr(fast_tanh, "NO_GRAD_MIN_NUMEL", 0)
    monkeypatch.setattr(fast_tanh, "GRAD_MIN_NUMEL", 0)


def test_function_values_on_both_paths(everywhere):
    for dtype, tol in ((torch.float64, 1e-15), (torch.float32, 3e-7)):
        x = _grid(dtype)
        exact = torch.tanh(x.double())
        plain = fast_tanh.tanh(x)
        tracked = fast_tanh.tanh(x.clone().requires_grad_())
        assert tracked.grad_fn is not None and plain.grad_fn is None
        for got in (plain, tracked):
            assert got.dtype == dtype
            assert float((got.detach().double() - exact).abs().max()) < tol


def test_one_graph_node_whose_backward_is_atens(everywhere):
    x = _grid(torch.float64).requires_grad_()
    y = fast_tanh.tanh(x)
    assert type(y.grad_fn).__name__ == "_OneNodeTanhBackward"
    assert y.grad_fn.next_functions[0][0].variable is x  # straight to the leaf
    g = torch.randn_like(x)
    (got,) = torch.autograd.grad(y, x, g)
    torch.testing.assert_close(got, torch.ops.aten.tanh_backward(g, y.detach()), rtol=0, atol=0)


def test_hessian_vector_products_by_double_backward(everywhere):
    """The Hessian of a small fc-tanh net's loss through the module equals nn.Tanh's."""
    torch.manual_seed(0)
    x, y = torch.randn(12, 3, dtype=torch.float64), torch.randn(12, 2, dtype=torch.float64)
    fast = nn.Sequential(nn.Linear(3, 4), fast_tanh.Tanh(), nn.Linear(4, 2)).double()
    ref = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    ref.load_state_dict(fast.state_dict())
    v = [torch.randn_like(p) for p in fast.parameters()]

    def hvp(net):
        params = list(net.parameters())
        loss = (net(x) - y).pow(2).mean()
        g = torch.autograd.grad(loss, params, create_graph=True)
        return torch.autograd.grad(g, params, grad_outputs=v)

    assert any(type(m).__name__ == "_OneNodeTanhBackward" for m in _graph(fast(x)))
    for a, b in zip(hvp(fast), hvp(ref)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


def _graph(out):
    seen, todo = [], [out.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.append(node)
            todo += [n for n, _ in node.next_functions]
    return seen


def test_functorch_transforms_and_forward_ad_get_atens_tanh(everywhere):
    from torch.autograd import forward_ad
    from torch.func import grad, hessian, jvp, vmap

    x = torch.randn(6, dtype=torch.float64)
    t = torch.randn(6, dtype=torch.float64)
    assert torch.equal(vmap(fast_tanh.tanh)(x.reshape(3, 2)), torch.tanh(x).reshape(3, 2))
    assert torch.equal(grad(lambda z: fast_tanh.tanh(z).sum())(x),
                       grad(lambda z: torch.tanh(z).sum())(x))
    assert torch.equal(jvp(fast_tanh.tanh, (x,), (t,))[1], jvp(torch.tanh, (x,), (t,))[1])
    torch.testing.assert_close(hessian(lambda z: fast_tanh.tanh(z).sum())(x),
                               hessian(lambda z: torch.tanh(z).sum())(x), rtol=0, atol=0)
    with forward_ad.dual_level():
        dual = forward_ad.make_dual(x.clone().requires_grad_(), t)
        tangent = forward_ad.unpack_dual(fast_tanh.tanh(dual)).tangent
    torch.testing.assert_close(tangent, t * (1 - torch.tanh(x) ** 2), rtol=0, atol=1e-15)


def test_small_tensors_and_other_devices_keep_atens_tanh():
    x = torch.randn(1000, dtype=torch.float64)
    assert x.numel() < fast_tanh.NO_GRAD_MIN_NUMEL
    assert torch.equal(fast_tanh.tanh(x), torch.tanh(x))
    tracked = fast_tanh.tanh(x.clone().requires_grad_())
    assert type(tracked.grad_fn).__name__ == "TanhBackward0"
    big = torch.randn(fast_tanh.GRAD_MIN_NUMEL, dtype=torch.float64, requires_grad=True)
    assert type(fast_tanh.tanh(big).grad_fn).__name__ == "_OneNodeTanhBackward"
    assert fast_tanh.tanh(torch.zeros(3, device="meta")).device.type == "meta"
    ints = torch.arange(-3, 4)
    assert torch.equal(fast_tanh.tanh(ints), torch.tanh(ints))


def test_fc_tanh_models_are_plain_and_the_engines_switch_them(monkeypatch):
    """Models build nn.Tanh; speed.accelerated (what the engines enter) makes the same
    modules compute the fused tanh for the block."""
    from eoslab import speed
    from eoslab.core.models import build_model

    monkeypatch.delenv(speed.ENV_VAR, raising=False)
    net = build_model("fc-tanh", (8,), 2, width=4, depth=2)
    acts = [m for m in net if isinstance(m, nn.Tanh)]
    assert len(acts) == 2 and all(type(m) is nn.Tanh for m in acts)
    with speed.accelerated(net):
        assert all(type(m) is fast_tanh.Tanh for m in acts)
    assert all(type(m) is nn.Tanh for m in acts)
    assert [m for m in net if isinstance(m, nn.Tanh)] == acts


def test_torch_compile_traces_it_as_torch_tanh(everywhere):
    """No graph break (fullgraph) and ATen's values: compiled kernels fuse tanh anyway."""
    x = torch.randn(50, dtype=torch.float64, requires_grad=True)
    compiled = torch.compile(fast_tanh.tanh, backend="eager", fullgraph=True)
    y = compiled(x)
    assert torch.equal(y, torch.tanh(x))
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, 1 - torch.tanh(x.detach()) ** 2, rtol=0, atol=1e-15)
