"""Santurkar et al. (NeurIPS 2018, arXiv 1805.11604): noise injected after BatchNorm, with a
mean and scale that change at every step, does not stop the net from training, while the
net without BatchNorm fails at the same step size.  Quick preset, full-batch GD at eta = 2
(six times the BatchNorm net's edge at initialisation)."""

import math

import pytest
import torch

from eoslab.chapters.ch13_normalization_sharpness.covariate_shift import (
    ShiftNoise,
    covariate_shift_runs,
)
from eoslab.chapters.presets import get_preset


def test_shifting_noise_after_batchnorm_does_not_stop_training():
    runs = covariate_shift_runs(get_preset("13", "quick"), 2.0, record_every=50)
    bn, noisy, plain = (runs[k]["loss"] for k in ("bn", "bn_noise", "plain"))
    assert not any(r["diverged"] for r in runs.values())
    # measured (noise-free training loss at the end): BatchNorm 0.10, with the shifting
    # noise 0.21, without BatchNorm 0.50 (dead ReLUs: the loss of a zero output)
    assert noisy[-1] < noisy[0] / 8, noisy  # it trains: >= 8x down (measured 14x)
    assert noisy[-1] < 0.6 * plain[-1], (noisy, plain)  # far better than no BatchNorm
    assert noisy[-1] < 3 * bn[-1], (noisy, bn)  # within 3x of clean BatchNorm (2.1x)


def test_the_noise_shifts_mean_and_scale_at_every_call_and_can_be_switched_off():
    noise = ShiftNoise(scale=2.0, shift=1.0, std=0.0, seed=0)
    z = torch.randn(500, 3, generator=torch.Generator().manual_seed(1))
    a, b = noise(z), noise(z)
    # std=0: a per-unit affine map z -> s z + m, with s in [1/2, 2], m in [-1, 1], new each call
    for out in (a, b):
        s = (out[1] - out[0]) / (z[1] - z[0])
        m = out[0] - s * z[0]
        assert torch.allclose(out, s * z + m, atol=1e-5)
        assert ((s >= 0.5) & (s <= 2.0)).all() and (m.abs() <= 1.0).all()
    assert not torch.allclose(a, b)
    noise.active = False
    assert torch.equal(noise(z), z)
    with pytest.raises(ValueError, match="scale=0.5"):
        ShiftNoise(scale=0.5)
    with pytest.raises(ValueError, match="lr=0"):
        covariate_shift_runs(get_preset("13", "quick"), 0)
    assert math.isfinite(float(a.sum()))
