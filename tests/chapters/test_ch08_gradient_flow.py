"""Gradient flow against the exact solution of a quadratic, and GD's first-order gap to it."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from eoslab import Objective, build_model, load_dataset
from eoslab.chapters.ch08_gd_vs_flow.gradient_flow import (
    FlowDistanceProbe,
    flow_sharpness,
    gradient_flow,
    matched_times,
)
from eoslab.core.train import fit
from eoslab.curvature.hessian import flatten


def _quadratic(device, spectrum=(3.0, 1.0, 0.2)):
    data = load_dataset("quadratic", spectrum=list(spectrum), dtype="float64", device=device)
    model = build_model("linear", data.input_shape, 1, dtype="float64", device=device, seed=1)
    return data, model, Objective(model, "mse", data.x_train, data.y_train)


def _exact_flow(data, w0, t):
    """theta(t) = w* + expm(-A t) (theta_0 - w*) for L = 1/2 (w - w*)^T A (w - w*)."""
    a, w_star = data.meta["A"], data.meta["w_star"]
    return w_star + scipy.linalg.expm(-a * t) @ (w0 - w_star)


def test_flow_matches_the_matrix_exponential_on_a_quadratic(device):
    data, _model, objective = _quadratic(device)
    w0 = flatten(objective.params()).cpu().numpy()
    flow = gradient_flow(objective, t_end=4.0, rtol=1e-10, atol=1e-12)
    for t in (0.0, 0.37, 1.5, 4.0):
        got = flow.vector(t).cpu().numpy()
        np.testing.assert_allclose(got, _exact_flow(data, w0, t), rtol=0, atol=1e-7)
    assert flow.loss(4.0) < flow.loss(1.0) < flow.loss(0.0)


def test_gd_gap_to_the_flow_is_first_order_in_eta(device):
    """On a quadratic, GD after k steps is (I - eta A)^k, the flow expm(-A k eta): the gap
    measured by the probe equals the exact one and halves (to first order) with eta."""
    data, _, objective = _quadratic(device)
    flow = gradient_flow(objective, t_end=2.0, rtol=1e-10, atol=1e-12)
    a, w_star = data.meta["A"], data.meta["w_star"]
    gaps = {}
    for lr in (0.1, 0.05):
        _, model, _ = _quadratic(device)
        w0 = flatten(dict(model.named_parameters())).detach().cpu().numpy()
        run = fit(model, data, "mse", torch.optim.SGD(model.parameters(), lr=lr),
                  steps=round(2.0 / lr), record_every=5,
                  probes=[FlowDistanceProbe(flow, 5)], eval_test=False)
        last = [r for r in run.history if "flow_distance" in r][-1]
        k = last["step"]
        gd = w_star + np.linalg.matrix_power(np.eye(len(w0)) - lr * a, k) @ (w0 - w_star)
        exact = np.linalg.norm(gd - _exact_flow(data, w0, k * lr))
        assert last["t"] == pytest.approx(k * lr)
        assert last["flow_distance"] == pytest.approx(exact, rel=1e-5)
        gaps[lr] = exact
    assert 1.8 < gaps[0.1] / gaps[0.05] < 2.2, gaps


def test_flow_sharpness_is_the_top_eigenvalue_on_a_quadratic():
    _, _, objective = _quadratic("cpu")
    flow = gradient_flow(objective, t_end=1.0)
    rows = flow_sharpness(flow, [0.0, 1.0], tol=1e-8, negative=True)
    assert [round(r["sharpness"], 6) for r in rows] == [3.0, 3.0]
    assert rows[0]["eig_min"] == pytest.approx(0.2, abs=1e-6)


def test_bad_arguments_are_named():
    _, _, objective = _quadratic("cpu")
    with pytest.raises(ValueError, match="t_end"):
        gradient_flow(objective, t_end=-1.0)
    with pytest.raises(ValueError, match="method"):
        gradient_flow(objective, t_end=1.0, method="Euler")
    flow = gradient_flow(objective, t_end=1.0)
    with pytest.raises(ValueError, match="outside"):
        flow.vector(2.0)
    with pytest.raises(ValueError, match="every"):
        FlowDistanceProbe(flow, 0)


def test_matched_times_are_multiples_of_eta():
    np.testing.assert_allclose(matched_times(1.0, 0.3, 1), [0.0, 0.3, 0.6, 0.9])
    assert math.isclose(matched_times(2.0, 0.5, 2)[-1], 2.0)
