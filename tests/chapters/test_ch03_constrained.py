"""The constrained trajectory of Damian, Nichani, Lee (2023) on a tiny float64 network."""

import pytest
import torch

from eoslab import Objective, build_model, fit
from eoslab.chapters.ch03_self_stabilization.constrained import (
    ConstrainedTrajectory,
    SelfStabilizationProbe,
    project_sharpness,
    sharpness_gradient,
)
from eoslab.curvature.hessian import flatten, unflatten


def _problem(device, n=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=gen, dtype=torch.float64).to(device)
    y = torch.randn(n, 1, generator=gen, dtype=torch.float64).to(device)
    model = build_model("fc-tanh", (2,), 1, width=3, depth=1, seed=seed, dtype="float64",
                        device=device)
    return model, Objective(model, "mse", x, y)


def _dense_top(objective, flat, like):
    H = torch.func.hessian(lambda v: objective(unflatten(v, like)))(flat)
    values, vectors = torch.linalg.eigh(H)
    return values[-1], vectors[:, -1]


def test_sharpness_gradient_matches_finite_differences_of_the_exact_top_eigenvalue(device):
    _model, objective = _problem(device)
    params = objective.params()
    flat = flatten(params)
    _top, u = _dense_top(objective, flat, params)
    g = sharpness_gradient(objective, params, u)
    h = 1e-5
    fd = torch.stack([(_dense_top(objective, flat + h * e, params)[0]
                       - _dense_top(objective, flat - h * e, params)[0]) / (2 * h)
                      for e in torch.eye(flat.numel(), dtype=flat.dtype, device=device)])
    torch.testing.assert_close(g, fd, rtol=1e-5, atol=1e-7)


def test_projection_lands_on_the_constraint_and_leaves_stable_points_alone(device):
    _model, objective = _problem(device, seed=1)
    params = objective.params()
    top, _ = _dense_top(objective, flatten(params), params)
    threshold = 0.8 * float(top)
    out = project_sharpness(objective, params, threshold, rtol=1e-6, eig_tol=1e-10,
                            max_steps=20)
    exact, _ = _dense_top(objective, flatten(out.params), params)
    assert out.newton_steps >= 1
    assert abs(float(exact) - threshold) <= 1e-5 * threshold
    stay = project_sharpness(objective, params, 2.0 * float(top), eig_tol=1e-10)
    assert stay.newton_steps == 0 and stay.moved == 0.0
    with pytest.raises(ValueError, match="threshold"):
        project_sharpness(objective, params, -1.0)


def test_constrained_trajectory_is_gd_below_the_edge_and_stable_above_it(device):
    _model, objective = _problem(device, seed=2)
    params = objective.params()
    top, _ = _dense_top(objective, flatten(params), params)
    lr = 0.5 / float(top)  # 2/eta = 4 S: far from the edge, so no projection
    traj = ConstrainedTrajectory(objective, params, lr, eig_tol=1e-10)
    gd = flatten(params)
    for _ in range(5):
        gd = gd - lr * torch.func.grad(lambda v: objective(unflatten(v, params)))(gd)
    traj.advance_to(5)
    torch.testing.assert_close(flatten(traj.params), gd)
    assert traj.projections == 0
    tight = ConstrainedTrajectory(objective, params, 2.2 / float(top), eig_tol=1e-10, rtol=1e-6,
                                  max_steps=20)
    tight.advance_to(3)
    exact, _ = _dense_top(objective, flatten(tight.params), params)
    assert float(exact) <= (float(top) / 1.1) * (1 + 1e-5)
    assert tight.projections >= 1
    with pytest.raises(ValueError, match="behind"):
        tight.advance_to(1)


def test_probe_measures_zero_distance_while_gd_is_stable(device):
    model, objective = _problem(device, seed=3)
    top, _ = _dense_top(objective, flatten(objective.params()), objective.params())
    from eoslab.core.data import Dataset

    data = Dataset("tiny", objective.x, objective.y, objective.x[:0], objective.y[:0], 0, (2,))
    probe = SelfStabilizationProbe(every=2, eig_tol=1e-10)
    run = fit(model, data, "mse", torch.optim.SGD(model.parameters(), lr=0.5 / float(top)),
              steps=6, record_every=2, probes=[probe])
    assert run.status == "finished"
    assert all(r["distance"] < 1e-10 and r["y"] < 0 for r in run.history)
    with pytest.raises(ValueError, match="every"):
        SelfStabilizationProbe(every=0)
