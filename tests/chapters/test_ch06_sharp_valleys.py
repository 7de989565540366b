"""eoslab.chapters.ch06_large_step_sizes.sharp_valleys against autograd and a brute-force
loop on tiny float64 problems."""

import math

import numpy as np
import pytest
import torch

from eoslab.chapters.ch06_large_step_sizes.sharp_valleys import (
    SharpValleys,
    escape_grid,
    noisy_gd,
    start_points,
)


def test_gradient_matches_autograd(device):
    fn = SharpValleys(dim=3, radii=(1.5, 2.0), width=0.1)
    x = torch.tensor([[0.3, -1.2, 0.9], [1.0, 1.0, 0.5], [0.01, 0.0, -0.02]],
                     dtype=torch.float64, device=device, requires_grad=True)
    (auto,) = torch.autograd.grad(fn.value(x).sum(), x)
    assert torch.allclose(fn.grad(x.detach()), auto, rtol=1e-10, atol=1e-12)


def test_global_minimum_and_rings_above_it():
    fn = SharpValleys(dim=2)
    radii, values = fn.ring_minima()
    assert len(radii) == len(fn.radii)
    for found, ring in zip(radii, fn.radii):
        assert abs(found - ring) < fn.width  # each ring's minimum sits on its ring
    assert min(values) > 0.1
    assert abs(float(fn.value(torch.zeros(2, dtype=torch.float64)))) < 1e-12
    # radial curvature at a ring: brute-force second difference
    r, h = torch.tensor(radii, dtype=torch.float64), 1e-4
    second = (fn.profile(r + h) - 2 * fn.profile(r) + fn.profile(r - h)) / h ** 2
    assert fn.ring_sharpness() == pytest.approx(float(second.min()), rel=1e-3)
    assert fn.ring_sharpness() > 100 * fn.curvature


def test_noisy_gd_matches_a_plain_loop(device):
    fn = SharpValleys(dim=2, radii=(1.5, 2.5), width=0.1)
    x0 = start_points(fn, 3, 3.0, seed=1, dtype=torch.float64, device=device)
    lrs, noises, steps, quiet = [0.01, 0.5], [0.0, 2.0], 40, 10
    out = noisy_gd(fn, x0, lrs, noises, steps, quiet=quiet, seed=5, record_every=10)
    # the same noise stream, replayed one run at a time
    gen = torch.Generator(device=device).manual_seed(5)
    draws = [torch.randn((2, 2, 3, 2), generator=gen, dtype=torch.float64, device=device)
             for _ in range(steps - quiet)]
    for i, lr in enumerate(lrs):
        for j, sigma in enumerate(noises):
            for s in range(3):
                x = x0[s].clone()
                for t in range(steps):
                    xi = draws[t][i, j, s] if t < steps - quiet else 0.0
                    x = x - lr * (fn.grad(x) + sigma * xi)
                assert torch.allclose(out["x"][i, j, s], x, atol=1e-12)
    assert out["radius"].shape == (5, 2, 2, 3)
    assert out["history_steps"] == [0, 10, 20, 30, 40]


def test_divergence_is_detected_and_frozen():
    fn = SharpValleys(dim=2)
    x0 = start_points(fn, 2, 5.0, dtype=torch.float64)
    out = noisy_gd(fn, x0, [0.1, 2.5], [0.0], 60)
    assert (out["diverged_at"][0] == -1).all() and (out["diverged_at"][1] >= 0).all()
    assert torch.isfinite(out["x"]).all()
    # eta > 2/mu: |1 - eta*mu| = 1.5 per step from radius 5 passes 1e4 after ~19 steps
    assert int(out["diverged_at"][1].min()) == math.ceil(math.log(1e4 / 5) / math.log(1.5))


def test_escape_grid_large_step_reaches_small_does_not():
    fn = SharpValleys(dim=4)
    edge = 2 / fn.ring_sharpness()
    grid = escape_grid(fn, [edge / 4, 0.3], [0.0], seeds=6, steps=400, quiet=0, radius=5.0,
                       dtype=torch.float64)
    assert grid.reached[0, 0] == 0.0 and grid.reached[1, 0] == 1.0
    assert np.all(grid.diverged == 0)
    assert len(grid.rows()) == 2


@pytest.mark.parametrize("kwargs", [{"dim": 0}, {"width": -1.0}, {"radii": (2.0, 1.0)},
                                    {"radii": (1.0, 2.0)}])
def test_bad_landscapes_are_refused(kwargs):
    with pytest.raises(ValueError, match="not allowed|too small"):
        SharpValleys(**kwargs)


def test_rings_that_are_not_minima_are_reported():
    fn = SharpValleys(dim=2, curvature=100.0)  # the bowl's pull beats every ring
    assert fn.ring_minima() == ([], [])
    with pytest.raises(ValueError, match="no ring is a local minimum"):
        fn.ring_sharpness()


def test_bad_grids_are_refused():
    fn = SharpValleys(dim=2)
    x0 = start_points(fn, 1, 5.0)
    with pytest.raises(ValueError, match="lrs"):
        noisy_gd(fn, x0, [0.0], [0.0], 5)
    with pytest.raises(ValueError, match="noises"):
        noisy_gd(fn, x0, [0.1], [-1.0], 5)
    with pytest.raises(ValueError, match="quiet"):
        noisy_gd(fn, x0, [0.1], [0.0], 5, quiet=6)
