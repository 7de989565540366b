"""Weight statistics against a process with a known invariant law, and against brute force."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from eoslab.chapters.ch11_invariant_measure.weight_stats import (
    WeightStatsProbe,
    flat_weights,
    full_gradient_norm,
    quadratic_sgd_chain,
    quadratic_stationary_variance,
    window_stats,
)
from eoslab.core.data import Dataset
from eoslab.core.train import fit
from eoslab.curvature.objective import Objective

LR, A, SIGMA = 0.2, 1.0, 1.0


def test_sgd_on_a_quadratic_settles_to_its_gaussian_invariant_law():
    v = quadratic_stationary_variance(LR, A, SIGMA)
    chain = quadratic_sgd_chain(4000, LR, A, SIGMA, 200, start=3.0, seed=1, record_every=10)
    early, late = chain[1].numpy(), chain[-1].numpy()
    # the start (all weights 3) is far from N(0, v); 200 steps of contraction 0.8 forget it
    assert stats.kstest(early, "norm", args=(0, math.sqrt(v))).pvalue < 1e-6
    assert stats.kstest(late, "norm", args=(0, math.sqrt(v))).pvalue > 1e-3
    assert abs(late.var() / v - 1) < 0.1


def test_at_stationarity_the_weights_move_but_their_distribution_does_not():
    v = quadratic_stationary_variance(LR, A, SIGMA)
    delta = 5
    chain = quadratic_sgd_chain(4000, LR, A, SIGMA, 300, seed=2, record_every=delta)
    late = window_stats(chain[-2], chain[-1])
    expected_move = math.sqrt(2 * v * (1 - (1 - LR * A) ** delta))
    assert abs(late["move_rms"] / expected_move - 1) < 0.05
    assert late["ratio"] < 0.1 and late["ks"] < 0.05
    # at the start all weights move together: the distribution moves with them
    drift = quadratic_sgd_chain(4000, LR, A, 0.01, 1, start=3.0, seed=2)
    first = window_stats(drift[0], drift[1])
    assert first["ratio"] > 0.99 and first["ks"] > 0.99


def test_window_stats_match_brute_force():
    gen = np.random.default_rng(0)
    a, b = gen.normal(size=50), gen.normal(size=50) + 0.3
    s = window_stats(a, b)
    assert math.isclose(s["move_rms"], float(np.sqrt(((a - b) ** 2).mean())), rel_tol=1e-12)
    # W1 between two empirical laws with equal counts: mean gap of the sorted samples
    assert math.isclose(s["w1"], float(np.abs(np.sort(a) - np.sort(b)).mean()), rel_tol=1e-9)
    grid = np.concatenate([a, b])

    def ecdf(x, t):
        return (x[:, None] <= t[None, :]).mean(0)

    assert math.isclose(s["ks"], float(np.abs(ecdf(a, grid) - ecdf(b, grid)).max()),
                        rel_tol=1e-12)
    assert s["w1"] <= s["move_rms"]
    assert window_stats([1.0, 2.0], [1.0, 2.0])["ratio"] is None
    with pytest.raises(ValueError, match="same length"):
        window_stats([1.0, 2.0], [1.0])


def _problem(device):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(12, 2, generator=gen, dtype=torch.float64)
    return Dataset("toy", x.to(device), y.to(device), x[:0].to(device), y[:0].to(device), 0, (3,))


def test_full_gradient_norm_includes_weight_decay(device):
    data = _problem(device)
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double().to(device)
    objective = Objective(model, "mse", data.x_train, data.y_train)
    model.zero_grad()
    (0.5 * (model(data.x_train) - data.y_train).pow(2).sum(1).mean()
     + 0.05 * sum(p.pow(2).sum() for p in model.parameters())).backward()
    expected = float(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm())
    assert math.isclose(full_gradient_norm(objective, weight_decay=0.1), expected, rel_tol=1e-10)
    with pytest.raises(ValueError, match="weight_decay"):
        full_gradient_norm(objective, weight_decay=-1.0)


def test_probe_records_movement_gradient_and_snapshots_during_fit(device):
    data = _problem(device)
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double().to(device)
    start = flat_weights(model).cpu().clone()
    probe = WeightStatsProbe(2, weight_decay=0.01, track=3, snapshot_every=4)
    snaps = {}

    def hook(step, m, o):
        snaps[step + 1] = flat_weights(m).cpu().clone()

    run = fit(model, data, "mse", torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.01),
              steps=6, batch_size=4, record_every=2, probes=[probe], after_step=[hook],
              eval_test=False)
    rows = [r for r in run.history if "grad_full" in r]
    assert [r["step"] for r in rows] == [0, 2, 4, 6]
    assert "move_rms" not in rows[0]
    moved = window_stats(snaps[2], snaps[4])
    assert math.isclose(rows[2]["move_rms"], moved["move_rms"], rel_tol=1e-10)
    assert math.isclose(rows[3]["travel_rms"], float((snaps[6] - start).norm()) / math.sqrt(8),
                        rel_tol=1e-10)
    assert sorted(probe.snapshots) == [0, 4]
    assert np.allclose(probe.snapshots[4], snaps[4].numpy())
    assert len(probe.tracks) == 3 * 4
    with pytest.raises(ValueError, match="every"):
        WeightStatsProbe(0)


def test_quadratic_helpers_reject_bad_values():
    with pytest.raises(ValueError, match="lr"):
        quadratic_stationary_variance(3.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="steps"):
        quadratic_sgd_chain(3, 0.1, 1.0, 1.0, 0)
