"""Chapter 01's claim on its quick preset, through the widget-free experiment: GD converges
below 2/lambda_max and diverges above it, heavy ball below and above (2+2beta)/lambda_max,
whatever the rotation; and the live app shows it on every slider move."""

import numpy as np
import pytest

from eoslab.chapters.ch01_quadratic_stability.app import QuadraticApp
from eoslab.chapters.ch01_quadratic_stability.experiment import experiment
from eoslab.chapters.ch01_quadratic_stability.quadratic import (
    Quadratic,
    simulate,
    stability_threshold,
)
from eoslab.chapters.presets import get_preset

QUICK = get_preset("01", "quick")


def _losses(result):
    return [row["loss"] for row in result["datasets"]["trajectory"]]


def _classes(widget):
    found = set(getattr(widget, "_dom_classes", ()))
    for child in getattr(widget, "children", ()):
        found |= _classes(child)
    return found


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_converges_below_and_diverges_above_the_threshold(momentum):
    shape = dict(momentum=momentum, lambda1=2.0, lambda2=0.3, angle=25.0)
    edge = stability_threshold(2.0, momentum)
    assert edge < QuadraticApp.LR_RANGE[1]
    below = experiment(QUICK, {**shape, "lr": 0.95 * edge})
    assert below["status"] == "finished" and below["verdict"].startswith("converges")
    assert below["threshold"] == pytest.approx(edge)
    assert _losses(below)[-1] < _losses(below)[0]
    above = experiment(QUICK, {**shape, "lr": 1.15 * edge})
    assert above["verdict"].startswith(("diverged", "does not converge"))
    assert _losses(above)[-1] > _losses(above)[0]


def test_the_verdict_and_the_path_across_the_threshold():
    shape = dict(lambda1=2.0, lambda2=0.5, angle=30.0, momentum=0.0)
    assert experiment(QUICK, {**shape, "lr": 0.9})["verdict"].startswith(
        "converges: eta = 0.9 < 2/lambda_max = 1")
    result = experiment(QUICK, {**shape, "lr": 1.3})
    assert result["status"] == "diverged" and result["verdict"].startswith("diverged at step")
    assert "too large for this curvature" in result["verdict"]
    expected = simulate(Quadratic((2.0, 0.5), 30.0), QUICK.start, 1.3, QUICK.steps)
    assert result["diverged"]["step"] == expected.diverged_at
    got = [[r["x"], r["y"]] for r in result["datasets"]["trajectory"]]
    assert np.allclose(got, expected.points)
    heavy = experiment(QUICK, {**shape, "lr": 1.3, "momentum": 0.5})  # (2 + 2*0.5)/2 = 1.5
    assert heavy["verdict"].startswith("converges: eta = 1.3 < (2+2beta)/lambda_max = 1.5")


def test_rotation_and_stretch_move_the_threshold():
    stretched = experiment(QUICK, {"lr": 0.9, "lambda1": 2.5, "lambda2": 0.5})  # 2/2.5 < 0.9
    assert stretched["verdict"].startswith(("diverged", "does not converge"))
    rotated = experiment(QUICK, {"lr": 0.9, "lambda1": 2.5, "lambda2": 0.5, "angle": -60.0})
    assert rotated["threshold"] == stretched["threshold"] == pytest.approx(0.8)
    assert rotated["status"] == "diverged" or _losses(rotated)[-1] > 1
    assert _losses(rotated) != _losses(stretched)


def test_the_app_exposes_its_css_classes_and_updates_in_place():
    app = QuadraticApp("quick", chart_mode="svg")
    assert {"eoslab-app", "eoslab-preset", "eoslab-lr-slider", "eoslab-momentum-slider",
            "eoslab-angle-slider", "eoslab-lambda1-slider", "eoslab-lambda2-slider",
            "eoslab-status", "eoslab-chart"} <= _classes(app.widget)
    assert "eoslab-run" not in _classes(app.widget)  # live: no Run button
    base = {k: v for k, v in app.chart.spec.items() if k != "datasets"}
    app.set(lr=1.3)  # each move recomputes at once, in the calling thread
    assert app.controls.status.value.startswith("diverged at step")
    assert app.result["datasets"]["trajectory"] == app.chart.spec["datasets"]["trajectory"]
    assert {k: v for k, v in app.chart.spec.items() if k != "datasets"} == base
    app.set(angle=-60.0, lambda1=3.0)
    assert app.quadratic.hessian[0, 1] != 0 and app.quadratic.lambda_max == 3.0
    with pytest.raises(ValueError, match="unknown control 'eta'"):
        app.set(eta=1.0)


def test_the_app_preset_switch_restores_the_preset():
    app = QuadraticApp("quick", chart_mode="svg")
    app.set(lr=2.0, lambda2=3.0)
    app.preset_menu.value = "default"
    assert app.preset.name == "default" and app.lr.value == app.preset.lr
    assert app.sliders["lambda2"].value == app.preset.lambda2
    assert len(app.datasets["trajectory"]) == app.preset.steps + 1


@pytest.mark.parametrize("name", ["quick", "default"])
def test_lr_edge_is_where_gd_stops_converging(name):
    """The preset's marked edge is the step size where the per-step factor crosses 1,
    within 1 %: 0.99 of it converges, 1.01 of it does not (with and without momentum)."""
    for momentum in (0.0, 0.5):
        preset = get_preset("01", name).replace(momentum=momentum)
        edge = preset.lr_edge
        below = experiment(preset, {"lr": 0.99 * edge})
        above = experiment(preset, {"lr": 1.01 * edge})
        assert below["rate"] < 1 <= above["rate"], (momentum, below["rate"], above["rate"])
        assert below["state"] == "converged" and above["state"] != "converged"
        assert abs(edge - below["threshold"]) <= 1e-12 * edge


def test_the_slider_spans_the_edge_and_the_marker_shows_it():
    app = QuadraticApp("quick", chart_mode="svg")
    low, high = app.slider_range("lr", app.preset)
    assert (low, high) == (0.01, 3.0) and low < app.preset.lr_edge < high
    assert "= 1" in app.edge.widget.value and "eoslab-lr-slider" in app.edge.widget.value
    app.set(lambda1=4.0)  # the edge follows the curvature: 2/4
    assert "= 0.5" in app.edge.widget.value


def test_clipped_rates_are_said_in_the_panel():
    result = experiment(get_preset("01", "quick"), {"lr": 0.5})
    assert result["datasets"]["clipped"]  # rho reaches 5 at eta = 3 on lambda = 2
    flat = experiment(get_preset("01", "quick").replace(lambda1=0.6, lambda2=0.5), {"lr": 0.5})
    assert flat["datasets"]["clipped"] == []  # |1 - 3 * 0.6| = 0.8 < 2: nothing clipped
