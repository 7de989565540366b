"""eoslab.chapters.ch15_swa.swa_geometry against exact answers on tiny float64 problems."""

import numpy as np
import pytest
import torch

from eoslab.chapters.ch15_swa.swa_geometry import flat_width, mean_slice, top_sharpness
from eoslab.curvature.objective import Objective
from eoslab.geometry.directions import filter_normalize, random_direction


def _problem():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(),
                                torch.nn.Linear(4, 2)).double()
    x = torch.randn(16, 3, dtype=torch.float64)
    y = torch.randn(16, 2, dtype=torch.float64)
    return model, Objective(model, "mse", x, y)


def test_top_sharpness_matches_the_dense_hessian():
    model, obj = _problem()
    params = {k: v.detach() for k, v in model.named_parameters()}
    names = list(params)
    sizes = [params[n].numel() for n in names]

    def flat_loss(vec):
        parts = dict(zip(names, [t.reshape(params[n].shape) for t, n in
                                 zip(torch.split(vec, sizes), names)]))
        return obj(parts)

    vec = torch.cat([params[n].reshape(-1) for n in names])
    dense = torch.autograd.functional.hessian(flat_loss, vec)
    exact = float(torch.linalg.eigvalsh(dense)[-1])
    assert top_sharpness(obj, params, tol=1e-10) == pytest.approx(exact, rel=1e-8)


def test_mean_slice_is_the_mean_of_brute_force_slices():
    model, obj = _problem()
    params = {k: v.detach() for k, v in model.named_parameters()}
    alphas = [-0.5, 0.0, 0.5]
    got = mean_slice(obj, params, alphas, seeds=(0, 1))
    want = np.zeros(3)
    for seed in (0, 1):
        d = filter_normalize(random_direction(params, seed=seed), params)
        want += [float(obj({k: params[k] + a * d[k] for k in params})) for a in alphas]
    assert np.allclose(got, want / 2, rtol=1e-10)


def test_flat_width_interpolates_the_crossing_points():
    a = np.linspace(-2, 2, 41)
    assert flat_width(a, a ** 2, 1.0) == pytest.approx(2.0, abs=0.01)
    assert flat_width(a, 4 * a ** 2, 1.0) == pytest.approx(1.0, abs=0.01)
    assert flat_width(a, np.zeros_like(a), 1.0) == pytest.approx(4.0)  # never rises
