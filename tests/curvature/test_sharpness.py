"""Sharpness probe and the other sharpness notions against dense Hessians and exact quadratics."""

import itertools
import statistics

import numpy as np
import pytest
import torch
from test_eigen import dense_hessian, tiny_objective

from eoslab import Objective, build_model, fit, load_dataset
from eoslab.core.train import ProbeContext
from eoslab.curvature.hessian import HessianOperator, flatten, unflatten
from eoslab.curvature.sharpness import (
    SharpnessProbe,
    adaptive_preconditioner,
    precond_sharpness,
    stability_threshold,
    threshold,
)
from eoslab.curvature.sharpness_notions import (
    batch_sharpness,
    directional_sharpness,
    gradient_alignment,
    rho_sharpness,
)


def context(objective, optimizer=None, step=0):
    model = objective.model
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.1)
    return ProbeContext(step, model, optimizer, objective, None, 0.1)


def quadratic(spectrum, device="cpu"):
    data = load_dataset("quadratic", spectrum=spectrum, dtype="float64", device=device)
    model = build_model("linear", data.input_shape, 1, dtype="float64", device=device)
    w_star = torch.as_tensor(data.meta["w_star"], device=device)
    return Objective(model, "mse", data.x_train, data.y_train), data, w_star


# -- thresholds -------------------------------------------------------------------------
def _diverges(make_opt, lam, steps=400):
    x = torch.nn.Parameter(torch.ones(1, dtype=torch.float64))
    opt = make_opt([x])
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * lam * x ** 2).sum().backward()
        opt.step()
    return float(x.detach().abs()) > 1.0


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.1),
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5, nesterov=True),
])
def test_thresholds_are_where_gd_on_a_quadratic_turns_unstable(make_opt):
    edge = stability_threshold(make_opt([torch.zeros(1, requires_grad=True)]))
    assert not _diverges(make_opt, 0.95 * edge)
    assert _diverges(make_opt, 1.05 * edge)


def test_adaptive_thresholds():
    adam = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.01, betas=(0.9, 0.999))
    assert stability_threshold(adam) == pytest.approx(38 / 0.01)
    rms = torch.optim.RMSprop([torch.zeros(1, requires_grad=True)], lr=0.01)
    assert stability_threshold(rms) == pytest.approx(2 / 0.01)
    assert threshold("momentum", 0.5, 0.9) == pytest.approx(3.8 / 0.5)
    with pytest.raises(ValueError, match="kind"):
        threshold("lbfgs", 0.1)


# -- the probe --------------------------------------------------------------------------
def test_probe_matches_dense_eigenvalues_and_warm_starts():
    obj = tiny_objective()
    lam = torch.linalg.eigvalsh(dense_hessian(obj))
    probe = SharpnessProbe(every=1, k=3, negative=1, tol=1e-10)
    row = probe(context(obj))
    np.testing.assert_allclose([row["sharpness"], row["eig_2"], row["eig_3"]],
                               lam.flip(0)[:3].numpy(), rtol=1e-8)
    assert row["eig_min"] == pytest.approx(float(lam[0]), rel=1e-8, abs=1e-12)
    assert "precond_sharpness" not in row  # plain SGD has no preconditioner
    again = probe(context(obj))
    assert again["sharpness"] == pytest.approx(row["sharpness"], rel=1e-8)
    assert again["hvps"] < row["hvps"]


def test_preconditioned_sharpness_from_adam_state():
    obj = tiny_objective()
    model = obj.model
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.9, 0.99), eps=1e-6)
    for _ in range(3):
        opt.zero_grad()
        obj({n: p for n, p in model.named_parameters()}).backward()
        opt.step()
    P = adaptive_preconditioner(opt, model, obj.param_names)
    manual = torch.cat([(opt.state[p]["exp_avg_sq"] / (1 - 0.99 ** 3)).sqrt().reshape(-1) + 1e-6
                        for p in model.parameters()])
    torch.testing.assert_close(P, manual, rtol=1e-12, atol=0)
    H = dense_hessian(obj)
    exact = torch.linalg.eigvals(torch.diag(1 / P) @ H).real.max()
    res = precond_sharpness(HessianOperator(obj), P, tol=1e-10)
    assert float(res.values[0]) == pytest.approx(float(exact), rel=1e-8)
    row = SharpnessProbe(every=1, tol=1e-10)(context(obj, opt))
    assert row["precond_sharpness"] == pytest.approx(float(exact), rel=1e-8)


def test_probe_on_a_parameter_block_and_in_batchnorm_train_mode():
    obj = tiny_objective()
    sizes = [p.numel() for p in obj.params().values()]
    H = dense_hessian(obj)
    start = sum(sizes[:2])
    block = H[start:, start:]  # "3.weight", "3.bias", "5.*": the last two layers
    row = SharpnessProbe(every=1, include=r"^[35]\.", tol=1e-10)(context(obj))
    assert row["sharpness"] == pytest.approx(float(torch.linalg.eigvalsh(block)[-1]), rel=1e-8)
    from test_hessian import dense_reference, tiny

    bn = tiny(model="cnn-bn", n=12)
    exact = torch.linalg.eigvalsh(dense_reference(tiny(model="cnn-bn", n=12, train_mode=True)))
    row = SharpnessProbe(every=1, train_mode=True, tol=1e-10)(context(bn))
    assert row["sharpness"] == pytest.approx(float(exact[-1]), rel=1e-8)


def test_probe_in_the_training_loop():
    data = load_dataset("teacher", n_train=30, n_test=0, dim=5, dtype="float64", device="cpu")
    model = build_model("fc-tanh", data.input_shape, 1, width=4, dtype="float64", device="cpu")
    run = fit(model, data, "mse", torch.optim.SGD(model.parameters(), lr=0.05), steps=6,
              record_every=3, probes=[SharpnessProbe(every=2)])
    steps_with = [r["step"] for r in run.history if "sharpness" in r]
    assert steps_with == [0, 2, 4, 6]
    assert all(r["sharpness"] > 0 and r["hvps"] > 0 for r in run.history if "sharpness" in r)


# -- every probe returns the chosen spectrum of an exact quadratic -----------------------
def test_quadratic_probes_return_the_spectrum():
    spectrum = [8.0, 5.0, 3.0, 1.0, 0.5]
    obj, data, w_star = quadratic(spectrum)
    A, Q = data.meta["A"], data.meta["Q"]
    row = SharpnessProbe(every=1, k=3, negative=1, tol=1e-12)(context(obj))
    np.testing.assert_allclose([row["sharpness"], row["eig_2"], row["eig_3"]], [8, 5, 3],
                               rtol=1e-10)
    assert row["eig_min"] == pytest.approx(0.5, rel=1e-10)
    at_min = {"1.weight": w_star.reshape(1, -1)}
    assert rho_sharpness(obj, at_min, rho=0.1, steps=100).value == pytest.approx(
        0.5 * 0.01 * 8, rel=1e-6)
    u1 = torch.as_tensor(Q[:, int(np.argmax(spectrum))])
    tilted = {"1.weight": (w_star + 0.3 * u1).reshape(1, -1)}
    op = HessianOperator(obj, tilted)
    assert gradient_alignment(op) == pytest.approx(1.0, abs=1e-8)
    for i, lam in enumerate(spectrum):
        assert directional_sharpness(op, torch.as_tensor(Q[:, i])) == pytest.approx(lam, rel=1e-10)
    assert directional_sharpness(op) == pytest.approx(8.0, rel=1e-10)  # gradient along u1
    full = batch_sharpness(obj, tilted, batch_size=len(spectrum), n_batches=2, tol=1e-12)
    assert full["mean"] == pytest.approx(8.0, rel=1e-10)
    assert np.allclose(A, HessianOperator(obj).dense().numpy(), atol=1e-10)


def test_batch_sharpness_is_the_mean_over_minibatches():
    obj = tiny_objective()
    res = batch_sharpness(obj, batch_size=10, n_batches=3, seed=1, tol=1e-10)
    gen = torch.Generator().manual_seed(1)
    expected = []
    for _ in range(3):
        idx = torch.randperm(30, generator=gen)[:10]
        sub = Objective(obj.model, "mse", obj.x[idx], obj.y[idx])
        expected.append(float(torch.linalg.eigvalsh(dense_hessian(sub))[-1]))
    np.testing.assert_allclose(res["values"], expected, rtol=1e-8)
    assert res["mean"] == pytest.approx(statistics.mean(expected), rel=1e-8)


def test_directional_sharpness_along_the_update():
    obj = tiny_objective()
    model = obj.model
    before = flatten(obj.params())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt.zero_grad()
    obj({n: p for n, p in model.named_parameters()}).backward()
    opt.step()
    d = flatten(obj.params()) - before
    op = HessianOperator(obj, unflatten(before, obj.params()))
    H = op.dense()
    assert directional_sharpness(op, d) == pytest.approx(float(d @ H @ d / (d @ d)), rel=1e-10)


def test_rho_sharpness_beats_random_search_and_stays_in_the_ball():
    obj = tiny_objective()
    params = obj.params()
    rho = 0.3
    res = rho_sharpness(obj, rho=rho, steps=30)
    eps = flatten(res.perturbation)
    assert float(eps.norm()) <= rho + 1e-12
    moved = unflatten(flatten(params) + eps, params)
    assert res.value == pytest.approx(float(obj(moved) - obj(params)), rel=1e-10)
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(200, eps.numel(), generator=gen, dtype=torch.float64)
    z = rho * z / z.norm(dim=1, keepdim=True)
    base = float(obj(params))
    best_random = max(float(obj(unflatten(flatten(params) + d, params))) - base for d in z)
    assert res.value > best_random


# -- bad inputs -------------------------------------------------------------------------
def test_bad_inputs_give_value_errors():
    obj = tiny_objective()
    with pytest.raises(ValueError, match=r"k=60 .*\[1, 49\]"):
        SharpnessProbe(every=1, k=60)(context(obj))
    with pytest.raises(ValueError, match="every"):
        SharpnessProbe(every=0)
    with pytest.raises(ValueError, match="k=0"):
        SharpnessProbe(every=1, k=0)
    with torch.no_grad():
        next(obj.model.parameters())[0, 0] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        SharpnessProbe(every=1)(context(obj))
    with pytest.raises(ValueError, match="non-finite"):
        rho_sharpness(obj, rho=0.1)
    with pytest.raises(ValueError, match="empty"):
        Objective(obj.model, "mse", obj.x[:0], obj.y[:0])
    obj = tiny_objective()
    with pytest.raises(ValueError, match="batch_size"):
        batch_sharpness(obj, batch_size=0)
    with pytest.raises(ValueError, match="rho"):
        rho_sharpness(obj, rho=-1.0)
    with pytest.raises(ValueError, match="zero"):
        directional_sharpness(HessianOperator(obj), torch.zeros(49, dtype=torch.float64))
    with pytest.raises(ValueError, match="include"):
        SharpnessProbe(every=1, include="nothing-matches")(context(obj))


# -- the edge of stability on the digits default ------------------------------------------
def test_progressive_sharpening_then_hovering_at_two_over_eta():
    """fc-tanh, MSE, full-batch GD on digits: S rises from below 2/eta, then hovers there."""
    lr = 0.4
    data = load_dataset("digits", n_train=300, device="cpu")
    model = build_model("fc-tanh", data.input_shape, data.n_outputs, width=100, device="cpu")
    run = fit(model, data, "mse", torch.optim.SGD(model.parameters(), lr=lr), steps=260,
              record_every=10, probes=[SharpnessProbe(every=10)], eval_test=False)
    assert run.status == "finished"
    ratio = {r["step"]: r["sharpness"] * lr / 2 for r in run.history if "sharpness" in r}
    steps = sorted(ratio)
    assert ratio[0] < 0.8  # starts well below the edge
    first_cross = next(s for s in steps if ratio[s] >= 1.0)
    sharpening = [ratio[s] for s in steps if s <= first_cross][-6:]
    assert len(sharpening) == 6 and all(b > a for a, b in itertools.pairwise(sharpening))
    assert ratio[first_cross] - ratio[0] > 0.3  # progressive sharpening
    late = [ratio[s] for s in steps if s >= first_cross + 60]
    assert len(late) >= 5
    assert 0.9 < statistics.median(late) < 1.25  # hovers at 2/eta
    assert max(late) < 1.5
