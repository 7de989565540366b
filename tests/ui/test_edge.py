"""The edge marker next to the step-size slider names the edge the slider is scaled by."""

import re

from eoslab.chapters.ch02_edge_of_stability.app import EdgeOfStabilityApp
from eoslab.chapters.ch12_bn_wd_periodic.app import BNWeightDecayApp
from eoslab.chapters.presets import get_preset


def tick_at(app) -> float:
    """Where the red tick sits on the slider's track, in percent."""
    return float(re.search(r"left:([0-9.]+)%", app.edge.widget.value).group(1))


def test_the_marker_follows_momentum_as_the_slider_does():
    app = EdgeOfStabilityApp("quick", store=False, chart_mode="svg", auto_run=False)
    edge = get_preset("02", "quick").lr_edge
    assert app.edge.text() == f"edge 2/λ₀ = {edge:.3g}"
    lr = app.sliders["lr"]
    before = tick_at(app)
    app.sliders["momentum"].value = 0.5
    assert app.edge.text() == f"edge (2+2β)/λ₀ = {1.5 * edge:.3g}"
    assert "(2+2β)/λ₀" in lr.description  # the slider's label says the same
    assert lr.min < 1.5 * edge < lr.max
    # the range moved with the edge, so the tick keeps its place along the track
    assert abs(tick_at(app) - before) < 1.0


def test_a_chapter_edge_that_is_not_a_hessian_eigenvalue_says_so():
    app = BNWeightDecayApp("quick", store=False, chart_mode="svg", auto_run=False)
    wd = get_preset("12", "quick").wd
    assert app.edge.text() == f"edge 2/λ (weight decay λ) = {2 / wd:.3g}"
