"""Chapter 09's phenomenon on the quick preset (Wu, Ma, E 2018; Wu and Su 2023): at a minimum
GD found, GD (and large-batch SGD) can stay, small-batch SGD cannot, so it escapes and
settles where the curvature is lower; the SGD criterion tightens as the batch shrinks."""

import itertools

from eoslab.chapters.ch09_sgd_stability.app import SgdStabilityApp, sgd_stability_experiment
from eoslab.chapters.presets import get_preset


def test_small_batch_sgd_escapes_a_minimum_gd_can_stay_at():
    preset = get_preset("09", "quick")
    lr, b = preset["lr"], preset["batch_size"]
    result = sgd_stability_experiment(preset.values, lr, b)
    assert result["status"] == "finished", result.get("diverged")
    grid = {r["batch_size"]: r for r in result["grid"]}
    # GD's criterion holds at the minimum; the exact SGD one fails for the chosen batch ...
    assert result["at_min"]["gd_ratio"] < 1 and result["at_min"]["ms_rate"] > 1.2
    # ... and every criterion tightens as the batch shrinks, B = n reducing to GD
    sizes = sorted(grid)
    for key in ("ms_rate", "trace_ratio"):
        values = [grid[s][key] for s in sizes]
        assert all(x >= y - 1e-9 for x, y in itertools.pairwise(values)), (key, values)
    assert grid[1]["trace_ratio"] > 1 and grid[sizes[-1]]["ms_rate"] <= 1
    # measured: SGD leaves the minimum (loss up by orders), GD from the same point does not
    s = result["summary"]
    assert s["escaped"] and s["sgd_peak"] > 1e4, s
    assert s["gd_peak"] < 10, s
    # and where SGD settles the curvature is lower and SGD is stable there
    end = result["at_end"]
    assert end["trace"] < 0.85 * result["at_min"]["trace"], end
    assert end["ms_rate"] <= 1 + 1e-6 and s["sgd_end"] < 1e-2, (end, s)
    # the noise driving the escape lies along the curvature (Wu, Wang, Su 2022): mu of order 1
    assert 0.3 < result["alignment"] <= 1.5, result["alignment"]


def test_a_large_batch_stays_where_the_small_one_escapes():
    preset = get_preset("09", "quick")
    result = sgd_stability_experiment(preset.values, preset["lr"], 16)
    assert result["at_min"]["ms_rate"] <= 1
    assert not result["summary"]["escaped"] and result["summary"]["sgd_peak"] < 10


def test_app_batch_slider_and_divergence_at_the_top_of_the_step_size_slider():
    app = SgdStabilityApp("quick", store=False, chart_mode="jupyter", auto_run=False)
    assert "eoslab-batch-slider" in app.sliders["batch_size"]._dom_classes
    app.lr.value = app.lr.max
    app.run_sync()
    assert "diverg" in app.controls.status.value
    app.lr.value = get_preset("09", "quick")["lr"]
    app.run_sync()
    assert "cannot stay" in app.controls.status.value and "left the minimum" in \
        app.controls.status.value
    app.sliders["batch_size"].value = 16
    app.run_sync()
    assert "SGD stayed" in app.controls.status.value
