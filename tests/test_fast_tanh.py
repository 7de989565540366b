"""FastTanh against torch.tanh: values, gradients, and that everything else passes through."""

import torch

from eoslab.fast_tanh import FastTanh


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
