"""Relative progress and the unstable-convergence probe on an exact quadratic."""

import math

import pytest
import torch

from eoslab import Objective, build_model, fit, load_dataset
from eoslab.chapters.ch04_unstable_convergence.progress import (
    UnstableConvergenceProbe,
    relative_progress,
)


def _quadratic(device, spectrum=(4.0, 1.0)):
    data = load_dataset("quadratic", spectrum=list(spectrum), dtype="float64", device=device)
    model = build_model("linear", (len(spectrum),), 1, dtype="float64", device=device)
    return data, model, Objective(model, "mse", data.x_train, data.y_train)


@pytest.mark.parametrize("lr", [0.1, 0.45, 0.7])
def test_relative_progress_equals_the_quadratic_formula(device, lr):
    data, _model, objective = _quadratic(device)
    params = objective.params()
    A = torch.as_tensor(data.meta["A"], dtype=torch.float64, device=device)
    w_star = torch.as_tensor(data.meta["w_star"], dtype=torch.float64, device=device)
    g = A @ (params["1.weight"].reshape(-1) - w_star)
    expected = -1.0 + 0.5 * lr * float(g @ A @ g) / float(g @ g)
    assert relative_progress(objective, params, lr) == pytest.approx(expected, rel=1e-10)


def test_relative_progress_is_nan_at_the_minimum_and_checks_lr(device):
    data, _model, objective = _quadratic(device)
    w_star = torch.as_tensor(data.meta["w_star"], dtype=torch.float64, device=device)
    at_min = {"1.weight": w_star.reshape(1, -1)}
    zero = torch.zeros(2, dtype=torch.float64, device=device)
    assert math.isnan(relative_progress(objective, at_min, 0.1, gradient=zero))
    assert abs(relative_progress(objective, objective.params(), 1e-6) + 1.0) < 1e-4
    with pytest.raises(ValueError, match="lr"):
        relative_progress(objective, at_min, -0.1)


def test_probe_on_a_quadratic_reports_exact_sharpness_and_alignment(device):
    # 1-D spread: with spectrum (4, 1) and GD at eta = 0.3, the gradient is g = A e; the
    # probe's eta*S must be 1.2 and its rp the quadratic formula.
    data, model, _objective = _quadratic(device)
    w0 = next(model.parameters()).detach().reshape(-1).clone()
    probe = UnstableConvergenceProbe(every=1, tol=1e-10)
    run = fit(model, data, "mse", torch.optim.SGD(model.parameters(), lr=0.3), steps=3,
              record_every=1, probes=[probe])
    A = torch.as_tensor(data.meta["A"], dtype=torch.float64, device=device)
    top = torch.linalg.eigh(A).eigenvectors[:, -1]
    first = run.history[0]
    w_star = torch.as_tensor(data.meta["w_star"], dtype=torch.float64, device=device)
    g = A @ (w0 - w_star)
    assert first["eta_sharpness"] == pytest.approx(1.2, rel=1e-8)
    assert first["alignment"] == pytest.approx(abs(float(g @ top)) / float(g.norm()), rel=1e-8)
    assert first["rp"] == pytest.approx(-1 + 0.15 * float(g @ A @ g) / float(g @ g), rel=1e-8)
    assert first["grad_curvature"] == pytest.approx(0.3 * float(g @ A @ g) / float(g @ g),
                                                    rel=1e-8)
