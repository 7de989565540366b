"""SAM / ASAM / m-sharpness: exact answers on a quadratic, rho=0 identity, BatchNorm, fit."""

import pytest
import torch
from torch import nn

from eoslab.core.data import load_dataset
from eoslab.core.models import build_model
from eoslab.core.train import fit
from eoslab.optimizers.sam import SAM, sam_perturbation


@pytest.fixture
def one_thread():
    """Tiny nets: intra-op threads only add contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Quadratic(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w.clone())


def _spd(n=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))[0]
    return q @ torch.diag(torch.tensor([5.0, 2.0, 1.0, 0.3], dtype=torch.float64)) @ q.T


def _closure(module, a):
    def closure():
        module.w.grad = None
        with torch.enable_grad():
            value = 0.5 * module.w @ a @ module.w
            value.backward()
        return value.detach()
    return closure


@pytest.mark.parametrize("rho", [0.01, 0.3])
def test_sam_gradient_on_quadratic(rho):
    a = _spd()
    w0 = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    module = Quadratic(w0)
    opt = SAM(torch.optim.SGD(module.parameters(), lr=1.0), rho=rho)
    closure = _closure(module, a)
    closure()  # .grad = A w, as fit leaves it
    opt.step(closure)
    aw = a @ w0
    expected = aw + rho * a @ aw / aw.norm()
    torch.testing.assert_close(w0 - module.w.detach(), expected)
    assert opt.last_perturbation_norm == pytest.approx(rho, rel=1e-12)


def test_asam_gradient_on_quadratic():
    a, rho, eta = _spd(), 0.2, 0.01
    w0 = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    module = Quadratic(w0)
    opt = SAM(torch.optim.SGD(module.parameters(), lr=1.0), rho=rho, adaptive=True, eta=eta)
    closure = _closure(module, a)
    opt.step(closure)  # no .grad yet: SAM computes it
    t = w0.abs() + eta
    g = a @ w0
    eps = rho * t**2 * g / (t * g).norm()
    torch.testing.assert_close(w0 - module.w.detach(), a @ (w0 + eps))
    assert opt.last_perturbation_norm == pytest.approx(rho, rel=1e-12)
    assert float(eps.norm()) != pytest.approx(rho, rel=1e-3)  # the radius is in T^-1 norm


def test_perturbation_norm_is_rho():
    gen = torch.Generator().manual_seed(3)
    grads = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen)]
    eps = sam_perturbation([torch.zeros(3, 4), torch.zeros(5)], grads, rho=0.7)
    norm = torch.linalg.vector_norm(torch.cat([e.reshape(-1) for e in eps]))
    assert float(norm) == pytest.approx(0.7, rel=1e-6)
    zero = sam_perturbation([torch.zeros(2)], [torch.zeros(2)], rho=0.7)
    assert torch.count_nonzero(zero[0]) == 0


def _data_model(name="fc-tanh", seed=0):
    data = load_dataset("digits", n_train=64, n_test=0, device="cpu")
    model = build_model(name, data.input_shape, data.n_outputs, width=8, depth=1, seed=seed,
                        device="cpu")
    return data, model


@pytest.mark.parametrize("m", [None, 16])
def test_rho_zero_is_the_base_optimiser_bit_for_bit(m, one_thread):
    data, plain = _data_model()
    _, wrapped = _data_model()
    fit(plain, data, "mse", torch.optim.SGD(plain.parameters(), lr=0.3, momentum=0.9),
        steps=6, batch_size=32, record_every=100)
    sam = SAM(torch.optim.SGD(wrapped.parameters(), lr=0.3, momentum=0.9), rho=0.0, m=m)
    fit(wrapped, data, "mse", sam, steps=6, batch_size=32, record_every=100)
    for p, q in zip(plain.parameters(), wrapped.parameters()):
        assert torch.equal(p, q)


def test_m_sharpness_matches_per_group_brute_force():
    torch.manual_seed(0)
    x = torch.randn(6, 3, dtype=torch.float64)
    y = torch.randn(6, 1, dtype=torch.float64)
    w0 = torch.randn(1, 3, dtype=torch.float64)
    rho, m = 0.5, 2

    def grad_at(w, xs, ys):  # d/dw mean 0.5 (x w - y)^2
        return ((xs @ w.T - ys).T @ xs) / xs.shape[0]

    expected = torch.zeros_like(w0)
    for s in range(0, 6, m):
        xs, ys = x[s:s + m], y[s:s + m]
        g = grad_at(w0, xs, ys)
        expected += grad_at(w0 + rho * g / g.norm(), xs, ys) * (m / 6)
    model = nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w0)
    from eoslab.core.losses import get_loss
    from eoslab.core.train import BatchClosure

    closure = BatchClosure(model, get_loss("mse"), x, y, None)
    closure()
    opt = SAM(torch.optim.SGD(model.parameters(), lr=1.0), rho=rho, m=m)
    opt.step(closure)
    torch.testing.assert_close(w0 - model.weight.detach(), expected)
    plain = SAM(torch.optim.SGD([nn.Parameter(w0.clone())], lr=1.0), rho=rho, m=None)
    assert plain.m is None


@pytest.mark.parametrize("m", [None, 16])
def test_batchnorm_statistics_updated_once_per_step(m, one_thread):
    from eoslab.core.losses import get_loss
    from eoslab.core.train import BatchClosure

    data, model = _data_model("cnn-bn", seed=1)
    model.train()
    closure = BatchClosure(model, get_loss("mse"), data.x_train, data.y_train, None)
    closure()  # the one unperturbed pass at w (what fit does), updating BN once
    after_w = {k: v.clone() for k, v in model.named_buffers()}
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    SAM(torch.optim.SGD(model.parameters(), lr=0.05), rho=0.5, m=m).step(closure)
    for name, buf in model.named_buffers():
        assert torch.equal(buf, after_w[name]), name  # the perturbed passes left no trace
    assert any(not torch.equal(p, start[k]) for k, p in model.named_parameters())
    closure()  # without the restore, another pass does change the statistics
    assert not torch.equal(dict(model.named_buffers())["2.running_mean"],
                           after_w["2.running_mean"])


def test_sam_trains_in_fit_and_lowers_the_loss(one_thread):
    data, model = _data_model(seed=2)
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.5), rho=0.05, m=16)
    sched = torch.optim.lr_scheduler.StepLR(sam, step_size=10, gamma=0.5)
    run = fit(model, data, "mse", sam, steps=30, scheduler=sched, batch_size=32,
              record_every=10)
    assert run.history[-1]["loss"] < 0.7 * run.history[0]["loss"]
    assert sam.base.param_groups[0]["lr"] == pytest.approx(0.5 * 0.5**3)


def test_bad_inputs():
    model = nn.Linear(2, 1)
    base = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="rho=-1"):
        SAM(base, rho=-1.0)
    with pytest.raises(ValueError, match="m=0"):
        SAM(base, m=0)
    with pytest.raises(ValueError, match="torch.optim.Optimizer"):
        SAM(model, rho=0.1)
    with pytest.raises(ValueError, match="closure"):
        SAM(base).step()


def test_consecutive_steps_outside_fit_recompute_the_gradient_at_w():
    """Two SAM steps driven by hand equal two steps each starting from fresh gradients."""
    torch.manual_seed(0)
    a = torch.tensor([[3.0, 0.5], [0.5, 1.0]], dtype=torch.float64)

    def make():
        w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
        return w, SAM(torch.optim.SGD([w], lr=0.1), rho=0.05)

    def closure_for(w):
        def closure(*_):
            w.grad = None
            loss = 0.5 * w @ a @ w
            loss.backward()
            return loss.detach()
        return closure

    w1, opt1 = make()
    for _ in range(2):
        opt1.step(closure_for(w1))
    w2, opt2 = make()
    for _ in range(2):
        w2.grad = None
        opt2.step(closure_for(w2))
    assert torch.equal(w1.detach(), w2.detach())
