"""Chapter 08's phenomenon on the quick preset (Elkabetz and Cohen 2021): GD tracks the
gradient flow with a gap of order eta while the flow's sharpness is below 2/eta, and
departs from it once the flow's sharpness passes 2/eta."""

from eoslab.chapters.ch08_gd_vs_flow.app import GdVsFlowApp
from eoslab.chapters.ch08_gd_vs_flow.experiment import (
    _flow_cached,
    experiment,
    flow_reference,
)
from eoslab.chapters.presets import get_preset


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
    # the small step stays close to the flow: within 10% of the distance the flow travels
    flow_travel = result["sharpness"]  # rows exist along the whole horizon
    assert flow_travel[-1]["t"] == preset.horizon
    assert s[small]["gap_end"] < 0.1, s
    assert "2/eta" in app.describe(result)


def test_the_top_of_the_slider_diverges_and_reuses_the_flow():
    preset = get_preset("08", "quick")
    flow_reference(preset)
    hits = _flow_cached.cache_info().hits
    result = experiment(preset, {"lr": GdVsFlowApp.LR_RANGE[1]})
    assert _flow_cached.cache_info().hits == hits + 1  # keyed on the preset, not the step
    assert result["status"] == "diverged"
    assert result["diverged"]["lr"] == GdVsFlowApp.LR_RANGE[1]
    assert result["diverged"]["stage"] == f"GD at eta = {GdVsFlowApp.LR_RANGE[1]:g}"
