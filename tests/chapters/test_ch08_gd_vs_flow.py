"""Chapter 08's phenomenon on the quick preset (Elkabetz and Cohen 2021): GD tracks the
gradient flow with a gap of order eta while the flow's sharpness is below 2/eta, and
departs from it once the flow's sharpness passes 2/eta."""

import pytest

from eoslab.chapters.ch08_gd_vs_flow.app import GdVsFlowApp
from eoslab.chapters.ch08_gd_vs_flow.experiment import (
    _flow_cached,
    experiment,
    flow_reference,
)
from eoslab.chapters.presets import get_preset
from eoslab.curvature.eigen import top_eigen
from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.objective import Objective


def test_gd_tracks_the_flow_until_its_sharpness_passes_two_over_eta():
    preset = get_preset("08", "quick")
    app = GdVsFlowApp("quick", store=False, chart_mode="jupyter", auto_run=False)
    seen = []
    result = experiment(preset, {"lr": preset.lr}, emit=lambda datasets, done: seen.append(done))
    assert result["status"] == "finished"
    assert seen and max(seen) <= app.total_work({"lr": preset.lr})
    s = {float(k): v for k, v in result["summary"].items()}
    big, small = max(s), min(s)
    # the flow sharpens (progressive sharpening) past 2/eta of the big step only
    assert s[big]["cross_t"] is not None and s[big]["cross_t"] < 0.8 * preset.horizon, s
    assert s[small]["cross_t"] is None, s
    # before the crossing the gap is first order in eta: gap / eta about equal for both
    ratio = s[big]["gap_over_eta"] / s[small]["gap_over_eta"]
    assert 0.7 < ratio < 1.4, s
    # after it the big step's gap grows several-fold, far beyond the first-order factor 2
    assert s[big]["growth"] > 2.5, s
    assert s[big]["gap_end"] > 4 * s[small]["gap_end"], s
    # the small step stays close to the flow: its final gap is within 10% (the margin) of
    # the distance |theta(T) - theta(0)| the flow travels over the horizon
    assert result["sharpness"][-1]["t"] == preset.horizon
    assert result["flow_travel"] > 0
    assert s[small]["gap_end"] < 0.1 * result["flow_travel"], (s, result["flow_travel"])
    text = app.describe(result)
    assert "2/η" in text and "tracking the flow" in text and "left the flow" in text, text


def test_the_top_of_the_slider_diverges_and_reuses_the_flow():
    preset = get_preset("08", "quick")
    flow_reference(preset)
    hits = _flow_cached.cache_info().hits
    app = GdVsFlowApp("quick", store=False, chart_mode="jupyter", auto_run=False)
    top = app.sliders["lr"].max
    result = experiment(preset, {"lr": top})
    assert _flow_cached.cache_info().hits == hits + 1  # keyed on the preset, not the step
    assert result["status"] == "diverged"
    assert result["diverged"]["lr"] == top
    assert result["diverged"]["stage"] == f"GD at eta = {top:g}"
    # the smaller step keeps its data and its own state in the status line
    text = app.describe_diverged(result)
    assert f"η = {top:g}: diverged at step" in text, text
    assert "(infx)" not in text and "inf" not in text, text


def test_lr_edge_is_two_over_the_initial_sharpness():
    # lr_edge = 2 / lambda_max at the initialisation, recomputed by Lanczos (margin 1%)
    for name in ("quick", "default"):
        preset = get_preset("08", name)
        data, model = preset.net.build()
        op = HessianOperator(Objective(model, preset.net.loss, data.x_train, data.y_train))
        edge = 2 / float(top_eigen(op, tol=1e-8).values[0])
        assert abs(preset.lr_edge - edge) < 0.01 * edge, (name, preset.lr_edge, edge)
    app = GdVsFlowApp("quick", store=False, chart_mode="jupyter", auto_run=False)
    lr = app.sliders["lr"]
    # the slider spans 0.1x to 3x the edge, and its label names the edge
    assert (lr.min, lr.max) == (0.0808, 2.42)  # 0.1x and 3x the edge, 3 digits
    assert "2/λ₀ = 0.81" in lr.description


def test_a_homogeneous_net_is_offered_and_checked():
    preset = get_preset("08", "quick")
    app = GdVsFlowApp("quick", store=False, chart_mode="jupyter", auto_run=False)
    assert {"fc-relu", "fc-linear"} <= {v for _, v in app.sliders["model"].options}
    with pytest.raises(ValueError, match="model='cnn' is not allowed"):
        experiment(preset, {"lr": 0.5, "model": "cnn"})
