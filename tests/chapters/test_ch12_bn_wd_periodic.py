"""Chapter 12's phenomenon on the quick preset: a scale-invariant net under weight decay
trains in periods (Lobacheva et al., NeurIPS 2021): the weight norm decays at the weight-decay
rate while the loss is tiny, the effective step size eta/||w||^2 climbs, the loss spikes and
the norm jumps back up; the period scales like 1/(eta * lambda).  Each spike comes when
eta * lambda_max reaches 2, the edge of stability (arXiv 2106.15739).
"""

import math
import statistics
from itertools import pairwise

import pytest

from eoslab.chapters.ch12_bn_wd_periodic.experiment import experiment
from eoslab.chapters.presets import get_preset


def _run(steps=None, sharpness_every=None, **settings):
    preset = get_preset("12", "quick")
    values = {"lr": preset.lr, "wd": preset.wd, **settings}
    preset = preset.replace(steps=steps or preset.steps,
                            sharpness_every=sharpness_every or preset.sharpness_every)
    result = experiment(preset, values)
    assert result["status"] == "finished"
    return preset, values, result


def test_weight_norm_shrinks_effective_step_rises_loss_spikes_and_a_new_period_starts():
    _, settings, result = _run()
    lr, wd = settings["lr"], settings["wd"]
    summary = result["summary"]
    assert summary["count"] >= 3, summary
    for event in summary["events"]:
        # a quiet phase (tiny loss) ends in a spike
        assert event["loss_before"] < 1e-3 and event["loss_peak"] > 100 * event["loss_before"]
    # and the norm jumps up, typically by well over 10x (events need 3x to count)
    jumps = [e["norm_after"] / e["norm_before"] for e in summary["events"]]
    assert statistics.median(jumps) > 10, jumps
    # within a period the norm shrinks a lot, so eta/||w||^2 rises >= 100x
    assert min(summary["shrink"]) > 10, summary["shrink"]
    # the shrinking is weight decay's: ||w_t|| ~ (1 - eta*lambda)^t while the loss is tiny
    rows = result["history"]
    rates = []
    for a, b in pairwise(rows):
        if a["loss"] < 1e-3 and b["loss"] < 1e-3 and b["si_norm"] < a["si_norm"]:
            rates.append(math.log(b["si_norm"] / a["si_norm"]) / (b["step"] - a["step"]))
    rates.sort()
    assert len(rates) > 20
    assert abs(rates[len(rates) // 2] / math.log(1 - lr * wd) - 1) < 0.15
    # each spike comes at the edge of stability: eta * lambda_max / 2 reaches ~1 just before
    # it, while over the quiet phases it is mostly well below
    edge_before = [e for e in summary["edge_before"] if e is not None]
    assert len(edge_before) == summary["count"]
    # (the last probe may already sit in the blow-up, far above 1: bound it from below)
    assert statistics.median(edge_before) > 0.8, edge_before
    quiet = [r["edge_ratio"] for r in rows if r.get("edge_ratio") is not None
             and r["loss"] < 1e-3]
    assert statistics.median(quiet) < 0.75, statistics.median(quiet)
    # and each spike is survived: the run ends trained again
    assert rows[-1]["acc"] > 0.9 or result["history"][-2]["acc"] > 0.9
    assert result["state"]["state"] == "periodic", result["state"]


def test_period_shortens_like_one_over_eta_lambda():
    _, _, base = _run(steps=2000, sharpness_every=1000)  # no Hessians needed here
    # half the weight decay: the norm shrinks half as fast per step, periods twice as long
    # (seeds 0-3 give ratios 1.8-3.4: a period also holds a refit of varying length)
    _, _, half = _run(steps=4000, sharpness_every=1000, wd=get_preset("12", "quick").wd / 2)
    p1, p2 = base["summary"]["mean_period"], half["summary"]["mean_period"]
    assert p1 is not None and p2 is not None
    assert 1.5 < p2 / p1 < 3.6, (p1, p2)


def test_a_large_step_thrashes_and_the_status_says_chaotic_not_quiet():
    # eta * lambda = 0.2 on the quick preset: the loss swings between ~0.06 and ~9 in the
    # second half and eta lambda_max / 2 has median ~7.5; the status must not read "quiet"
    from eoslab.chapters.ch12_bn_wd_periodic.app import BNWeightDecayApp

    preset = get_preset("12", "quick").replace(steps=800, sharpness_every=40)
    result = experiment(preset, {"lr": 1.0, "wd": preset.wd})
    state = result["state"]
    assert result["status"] == "finished" and state["state"] == "chaotic", state
    # margins (measured: swings ~300x, edge ratio ~6): swings > 10x, edge ratio > 3
    assert state["loss_max"] > 10 * state["loss_min"], state
    assert state["edge_median"] > 3, state
    app = BNWeightDecayApp(preset, store=False, chart_mode="jupyter", auto_run=False)
    app._finish(result)
    status = app.controls.status.value
    assert "chaotic" in status and "more steps" not in status, status


def test_lr_edge_is_the_weight_decay_step_threshold_and_sets_the_slider():
    from eoslab.chapters.ch12_bn_wd_periodic.app import BNWeightDecayApp

    preset = get_preset("12", "quick").replace(steps=600, sharpness_every=10_000)
    assert math.isclose(preset.lr_edge, 2 / preset.wd)
    # 10% either side of the threshold: below it the norm settles, above it it explodes
    below = experiment(preset, {"lr": 0.9 * preset.lr_edge, "wd": preset.wd})
    assert below["status"] == "finished", below.get("diverged")
    above = experiment(preset, {"lr": 1.1 * preset.lr_edge, "wd": preset.wd})
    assert above["status"] == "diverged", above["history"][-1]
    app = BNWeightDecayApp("quick", store=False, chart_mode="jupyter", auto_run=False)
    lr, low, high = app.sliders["lr"], *BNWeightDecayApp.LR_SPAN
    # the ends are LR_SPAN times the edge to 3 significant digits
    assert (lr.min, lr.max) == pytest.approx((low * 10, high * 10), rel=5e-3)
    assert lr.min < preset.lr < lr.max and "2/λ = 10" in lr.description
    for name in ("default", "paper"):  # every preset's lr strictly inside, the edge too
        app.preset_menu.value = name
        other = get_preset("12", name)
        assert abs(lr.max - high * other.lr_edge) <= 0.01, lr
        assert lr.min < other.lr < other.lr_edge < lr.max, (name, lr)


def test_the_app_explains_a_blow_up_past_eta_lambda_2():
    from eoslab.chapters.ch12_bn_wd_periodic.app import BNWeightDecayApp

    # at the slider's top eta * lambda = 2.5: |1 - eta lambda| = 1.5 per step; ||w||
    # overflows near step 100 and the loss turns non-finite near step 200
    short = get_preset("12", "quick").replace(steps=300, sharpness_every=1000)
    app = BNWeightDecayApp(short, store=False, chart_mode="jupyter", auto_run=False)
    assert "eoslab-wd-slider" in app.sliders["wd"]._dom_classes
    app.set(lr=app.sliders["lr"].max)
    app.run(wait=True)
    status = app.controls.status.value
    assert "GD + weight decay diverged" in status and "alone overshoots" in status, status


@pytest.mark.slow
def test_default_preset_figures():
    # the notebook quotes the default preset: a median period of about 4 to 5 / (eta
    # lambda) (measured 4.4: 12 destabilisations, median period 440 steps at eta lambda =
    # 0.01) and an edge ratio just before the spikes of about 1 (measured median 1.1)
    preset = get_preset("12", "default")
    result = experiment(preset, {"lr": preset.lr, "wd": preset.wd})
    assert result["status"] == "finished"
    s = result["summary"]
    assert 8 <= s["count"] <= 16, s["count"]
    assert 3.5 < s["scaled_period"] < 5.5, s["scaled_period"]
    assert 0.8 < statistics.median(e for e in s["edge_before"] if e is not None) < 1.6
    assert result["state"]["state"] == "periodic", result["state"]
