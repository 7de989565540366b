"""Destabilisation finding on histories whose events are known exactly."""

import math

import pytest

from eoslab.chapters.ch12_bn_wd_periodic.periodic import destabilisations, period_summary


def _history(lr, wd, starts, steps, every=10, reset=50.0, floor_loss=1e-4):
    """Norm decaying exactly as (1 - lr*wd)^t, reset to ``reset`` at each step in ``starts``."""
    rows, norm, loss = [], reset, 1.0
    for t in range(steps + 1):
        if t in starts:
            norm, loss = reset, 5.0
        if t % every == 0:
            rows.append({"step": t, "si_norm": norm, "eff_lr": lr / norm ** 2, "loss": loss})
        norm *= 1 - lr * wd
        loss = max(loss * 0.9, floor_loss)
    return rows


def test_finds_each_reset_and_the_periods_between_them():
    lr, wd = 0.1, 0.2
    starts = {300, 650, 1000, 1350}
    rows = _history(lr, wd, starts, 1600)
    events = destabilisations(rows)
    assert [e["step"] for e in events] == sorted(starts)
    first = events[0]
    assert first["norm_after"] == 50.0
    assert math.isclose(first["norm_before"], 50.0 * (1 - lr * wd) ** 290, rel_tol=1e-9)
    assert math.isclose(first["eff_lr_before"], lr / first["norm_before"] ** 2, rel_tol=1e-9)
    assert first["loss_before"] == pytest.approx(1e-4)
    assert first["loss_peak"] == 5.0
    summary = period_summary(rows, lr=lr, wd=wd)
    assert summary["count"] == 4 and summary["periods"] == [350, 350, 350]
    assert summary["mean_period"] == 350.0
    assert summary["scaled_period"] == pytest.approx(350 * lr * wd)
    # between resets the norm shrinks by (1 - lr wd)^(350 - 10): reset row to last quiet row
    assert summary["median_shrink"] == pytest.approx((1 - lr * wd) ** -340, rel=1e-9)


def test_jumps_within_min_gap_are_one_event_and_slow_growth_is_none():
    rows = [{"step": 10 * i, "si_norm": v, "loss": 0.1} for i, v in
            enumerate([1.0, 0.5, 5.0, 40.0, 30.0, 20.0, 25.0, 30.0, 36.0])]
    events = destabilisations(rows, min_gap=20)
    assert [e["step"] for e in events] == [20]
    assert events[0]["norm_after"] == 40.0  # the event's largest norm
    assert destabilisations(rows, min_gap=5) != events  # separate events when not merged
    summary = period_summary(rows[3:], lr=0.1, wd=0.1)
    assert summary["count"] == 0 and summary["median_period"] is None


def test_non_finite_rows_are_skipped_and_bad_jump_rejected():
    rows = [{"step": 0, "si_norm": 1.0}, {"step": 10, "si_norm": float("nan")},
            {"step": 20, "si_norm": 0.5}, {"step": 30, "si_norm": 9.0}]
    assert [e["step"] for e in destabilisations(rows)] == [30]
    with pytest.raises(ValueError, match="jump=1"):
        destabilisations(rows, jump=1)
