"""Chapter 19's phenomenon on its quick preset, through the widget-free experiment:
Lookahead(alpha=0.5, k=5) converges at step sizes where GD alone diverges, up to the derived
threshold and not beyond, and its slow weights sit at a lower noise floor than SGD alone."""

import json

import numpy as np

from eoslab.chapters.ch19_lookahead.app import LookaheadApp
from eoslab.chapters.ch19_lookahead.experiment import experiment, floor_text
from eoslab.chapters.presets import get_preset
from eoslab.optimizers.lookahead import lookahead_threshold

QUICK = get_preset("19", "quick")


def _losses(result, path):
    return [r["loss"] for r in result["datasets"]["paths"] if r["path"] == path]


def _classes(widget):
    found = set(getattr(widget, "_dom_classes", ()))
    for child in getattr(widget, "children", ()):
        found |= _classes(child)
    return found


def test_lookahead_is_stable_between_2_over_lambda_and_its_threshold():
    lam, alpha, k = max(QUICK.eigenvalues), QUICK.alpha, QUICK.k
    edge = lookahead_threshold(lam, alpha, k)
    assert edge > 2 / lam
    for lr in np.linspace(2 / lam + 0.02, edge - 0.02, 5):
        result = experiment(QUICK, {"lr": float(lr)})
        inner, slow = _losses(result, "GD alone"), _losses(result, "slow weights")
        assert inner[-1] > inner[0], lr  # GD alone grows (blows up if the run is long enough)
        assert result["lookahead_diverged"] is None and result["status"] == "finished", lr
        assert slow[-1] < 1e-2 * slow[0], lr
    past = experiment(QUICK, {"lr": edge + 0.1})
    assert past["lookahead_diverged"] is not None and past["status"] == "diverged"
    assert past["diverged"]["stage"] == "Lookahead" and "diverged" in past["verdict"]
    calm = experiment(QUICK, {"lr": 1.0})
    assert calm["inner_diverged"] is None and "converges" in calm["verdict"]


def test_slow_weights_have_a_lower_noise_floor_than_sgd():
    floors = experiment(QUICK, {})["floors"]
    assert floors["slow"] < 0.6 * floors["inner"]
    assert floors["exact"]["slow"] < 0.6 * floors["exact"]["inner"]
    assert "ratio" in floor_text(floors)


def test_the_live_app_recomputes_on_each_move_and_keeps_working_after_a_divergence():
    app = LookaheadApp("quick", chart_mode="svg")
    assert {"eoslab-app", "eoslab-preset", "eoslab-lr-slider", "eoslab-alpha-slider",
            "eoslab-k-slider", "eoslab-noise-slider", "eoslab-status",
            "eoslab-chart"} <= _classes(app.widget)
    assert "eoslab-run" not in _classes(app.widget)  # live: no Run button
    assert "Noise floor" in app.controls.status.value
    app.set(lr=app.sliders["lr"].max)
    assert "diverged" in app.controls.status.value
    app.set(lr=1.0)
    assert app.result["status"] == "finished" and "converges" in app.controls.status.value
    app.set(k=4)
    assert app.result["datasets"]["paths"] == app.chart.spec["datasets"]["paths"]
    assert "k=4" in app.controls.status.value


def test_lr_edge_is_where_gd_alone_stops_converging():
    """The marked edge 2/lambda_max: GD alone's loss falls at 0.98 of it and grows at 1.02
    of it over 300 exact steps (margin 2 %); the slider spans 0.025 to 1.5 times it."""
    from eoslab.chapters.ch01_quadratic_stability.quadratic import Quadratic, simulate

    preset = get_preset("19", "quick")
    quadratic = Quadratic(preset.eigenvalues, angle=preset.angle)
    for factor, falls in ((0.98, True), (1.02, False)):
        losses = simulate(quadratic, preset.start, factor * preset.lr_edge, 300).losses
        assert bool(losses[-1] < losses[0]) == falls, (factor, losses[0], losses[-1])
    app = LookaheadApp("quick", chart_mode="svg")
    assert (app.sliders["lr"].min, app.sliders["lr"].max) == (0.05, 3.0)
    assert "edge 2/λ_max (GD) = 2" in app.edge.widget.value


def test_gd_alone_is_drawn_dashed_as_the_text_says():
    from eoslab.chapters.ch19_lookahead.charts import lookahead_layout

    spec = json.dumps(lookahead_layout().to_dict())
    assert '"range": [[6, 4], [1, 0], [1, 0]]' in spec and '"GD alone"' in spec
