"""Schedule curves against torch's own schedulers and closed forms; the range test against
the exact stability threshold of GD on a quadratic."""

import itertools
import math

import numpy as np
import pytest

from eoslab.core.config import TrainConfig
from eoslab.optimizers.schedules import (
    lr_range_test,
    restart_steps,
    schedule_curve,
    smooth_losses,
    suggest_range,
)


def test_sgdr_curve_is_the_closed_form_cosine_with_restarts():
    lr, low, period, steps = 0.4, 0.05, 7, 30
    curve = schedule_curve("cosine-restarts", lr, steps, {"T_0": period, "eta_min": low})
    exact = [low + 0.5 * (lr - low) * (1 + math.cos(math.pi * (t % period) / period))
             for t in range(steps)]
    assert np.allclose(curve, exact, atol=1e-12)
    assert restart_steps(curve) == [7, 14, 21, 28]


def test_triangular_curve_is_the_closed_form_triangle():
    lr, base, up, steps = 1.0, 0.1, 5, 23
    curve = schedule_curve("triangular", lr, steps, {"base_lr": base, "step_size_up": up})
    exact = [base + (lr - base) * (1 - abs((t % (2 * up)) / up - 1)) for t in range(steps)]
    assert np.allclose(curve, exact, atol=1e-9)


def test_curve_is_the_schedule_fit_follows():
    cfg = TrainConfig(dataset="quadratic", model="linear", lr=0.3, steps=12, record_every=1,
                      schedule="step", schedule_options={"step_size": 4, "gamma": 0.5})
    from eoslab.core.experiment import run
    rows = [r for r in run(cfg, store=False).history if r["step"] < cfg.steps]
    assert [r["lr"] for r in rows] == pytest.approx(schedule_curve("step", 0.3, 12, {
        "step_size": 4, "gamma": 0.5}))
    assert schedule_curve("constant", 0.3, 3) == [0.3, 0.3, 0.3]


def test_range_test_lr_is_geometric_and_blows_up_past_2_over_lambda():
    spectrum = [4.0, 1.0, 0.5]
    cfg = TrainConfig(dataset="quadratic", data_options={"spectrum": spectrum}, model="linear",
                      dtype="float64")
    res = lr_range_test(cfg, 1e-3, 10.0, 120)
    gamma = (10.0 / 1e-3) ** (1 / 119)
    assert np.allclose(res.lrs, [1e-3 * gamma ** t for t in range(len(res.lrs))], rtol=1e-9)
    edge = 2 / max(spectrum)
    # GD on a quadratic: the loss falls at every step with eta < 2/lambda_max ...
    stable = [loss for lr, loss in zip(res.lrs, res.losses) if lr < edge]
    assert all(b < a for a, b in itertools.pairwise(stable))
    # ... and the test stops (loss x4) only after eta has passed 2/lambda_max
    assert res.stopped_early and res.lrs[-1] > edge
    assert res.losses[-1] > 4 * min(res.losses)
    assert 1e-3 <= res.low < res.high <= res.lrs[-1]


def test_suggest_range_on_a_known_curve():
    lrs = np.logspace(-3, 1, 41)
    loss = 1 / (1 + (lrs / 0.01) ** 2) + (lrs / 2.0) ** 4  # falls around 0.01, rises near 2
    low, high, steep = suggest_range(lrs, loss)
    assert high == pytest.approx(lrs[np.argmin(loss)])
    assert 0.002 < low < 0.01 and 0.005 < steep < 0.02 and steep < high
    assert smooth_losses([1.0, 3.0], beta=0.5) == pytest.approx([1.0, (0.25 + 1.5) / 0.75])


def test_bad_input_names_the_value():
    with pytest.raises(ValueError, match="unknown schedule 'warp'"):
        schedule_curve("warp", 0.1, 10)
    with pytest.raises(ValueError, match="steps=0"):
        schedule_curve("cosine", 0.1, 0)
    with pytest.raises(ValueError, match="lr=-1"):
        schedule_curve("cosine", -1, 10)
    cfg = TrainConfig(dataset="quadratic", model="linear")
    with pytest.raises(ValueError, match="lr_max=0.001"):
        lr_range_test(cfg, 0.01, 0.001, 10)
    with pytest.raises(ValueError, match="beta=1"):
        smooth_losses([1.0], beta=1)


def test_catapults_and_edge_ratios_read_a_history():
    from eoslab.optimizers.schedules import catapults, edge_ratios
    rows = [{"step": s, "lr": lr, "loss": loss, "sharpness": sh} for s, lr, loss, sh in [
        (0, 0.4, 1.0, 4.0), (10, 0.2, 0.5, 9.0), (20, 0.1, 0.4, 12.0), (30, 0.4, 2.0, 10.0),
        (40, 0.35, 0.6, 5.0), (50, 0.3, 0.3, 5.5), (200, 0.4, 0.1, 6.0)]]
    found = catapults(rows, window=30)
    assert len(found) == 1  # 0.3 -> 0.4 is no restart (x1.33 < 1.5)
    c = found[0]
    assert (c["step"], c["loss_before"], c["loss_peak"], c["sharp_before"], c["sharp_after"]) \
        == (30, 0.4, 2.0, 12.0, 5.0)
    assert c["spike"] == pytest.approx(5.0) and c["edge"] == pytest.approx(5.0)
    assert edge_ratios(rows)[1] == (10, pytest.approx(0.9))
