"""Normalised GD against its definition, exactly, in float64."""

import math

import pytest
import torch

from eoslab import build_model, fit, load_dataset
from eoslab.optimizers.normalized import NormalizedGD, effective_lr, effective_sharpness


def test_one_step_moves_eta_along_the_global_unit_gradient(device):
    a = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64, device=device))
    b = torch.nn.Parameter(torch.tensor([[0.5]], dtype=torch.float64, device=device))
    c = torch.nn.Parameter(torch.tensor([7.0], dtype=torch.float64, device=device))  # no grad
    opt = NormalizedGD([{"params": [a, c]}, {"params": [b]}], lr=0.3)
    a.grad = torch.tensor([3.0, 0.0], dtype=torch.float64, device=device)
    b.grad = torch.tensor([[4.0]], dtype=torch.float64, device=device)
    opt.step()
    torch.testing.assert_close(a.detach().cpu(), torch.tensor([1.0 - 0.3 * 0.6, -2.0],
                                                              dtype=torch.float64))
    torch.testing.assert_close(b.detach().cpu(), torch.tensor([[0.5 - 0.3 * 0.8]],
                                                              dtype=torch.float64))
    assert c.item() == 7.0 and opt.last_grad_norm == pytest.approx(5.0)


def test_zero_gradient_gives_no_step_and_bad_settings_are_refused():
    w = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = NormalizedGD([w], lr=0.1)
    w.grad = torch.zeros(3, dtype=torch.float64)
    opt.step()
    assert torch.equal(w.detach(), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="lr"):
        NormalizedGD([w], lr=0.0)
    with pytest.raises(ValueError, match="eps"):
        NormalizedGD([w], lr=0.1, eps=-1.0)


def test_on_a_1d_quadratic_ngd_ends_in_the_two_cycle_at_effective_edge():
    # L = lam w^2 / 2; NGD moves by eta * sign(w), so from w0 = 0.25 + k eta it reaches the
    # cycle +-eta/2 where eta_eff * lam = eta / (lam eta/2) * lam = 2, i.e. ratio 1.
    lam, eta = 3.0, 0.5
    w = torch.nn.Parameter(torch.tensor([0.25 + 4 * eta], dtype=torch.float64))
    opt = NormalizedGD([w], lr=eta, eps=0.0)
    for _ in range(10):
        opt.zero_grad()
        (0.5 * lam * w.pow(2)).sum().backward()
        opt.step()
    assert abs(abs(w.item()) - 0.25) < 1e-12
    g = lam * abs(w.item())
    assert effective_sharpness(lam, eta, grad_norm=g) == pytest.approx(1.0)


def test_effective_step_sizes_and_their_errors():
    assert effective_lr(0.2, grad_norm=4.0) == pytest.approx(0.05)
    assert effective_lr(0.2, loss=0.01, method="sqrt") == pytest.approx(0.2 / (2 * 0.1))
    assert effective_lr(0.2, method="gd") == 0.2
    with pytest.raises(ValueError, match="grad_norm"):
        effective_lr(0.2)
    with pytest.raises(ValueError, match="loss"):
        effective_lr(0.2, loss=0.0, method="sqrt")
    with pytest.raises(ValueError, match="method"):
        effective_lr(0.2, method="adam")


def test_runs_in_fit_and_each_step_has_length_eta(device):
    data = load_dataset("digits", n_train=20, loss="mse", device=device, dtype="float64")
    model = build_model("fc-tanh", data.input_shape, data.n_outputs, width=8, depth=1,
                        dtype="float64", device=device)
    before = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    run = fit(model, data, "mse", NormalizedGD(model.parameters(), lr=0.05), steps=3,
              record_every=1)
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    assert run.status == "finished"
    assert float((after - before).norm()) <= 3 * 0.05 + 1e-12
    assert run.history[-1]["loss"] < run.history[0]["loss"]
    assert math.isfinite(run.history[-1]["grad_norm"])


def test_effective_sharpness_probe_uses_the_hessian_of_the_base_loss(device):
    from eoslab.optimizers.normalized import EffectiveSharpnessProbe

    data = load_dataset("quadratic", spectrum=[4.0, 1.0], dtype="float64", device=device,
                        loss="sqrt-mse")
    model = build_model("linear", (2,), 1, dtype="float64", device=device)
    probe = EffectiveSharpnessProbe(every=1, method="sqrt", tol=1e-10)
    run = fit(model, data, "sqrt-mse", torch.optim.SGD(model.parameters(), lr=0.1), steps=2,
              record_every=1, probes=[probe])
    first = run.history[0]
    assert first["sharpness"] == pytest.approx(4.0, rel=1e-8)  # of L, not of sqrt(L)
    assert first["loss"] == pytest.approx(math.sqrt(first["base_loss"]), rel=1e-10)
    assert first["edge_ratio"] == pytest.approx(0.1 / (2 * first["loss"]) * 4.0 / 2, rel=1e-8)
    with pytest.raises(ValueError, match="method"):
        EffectiveSharpnessProbe(every=1, method="adam")
