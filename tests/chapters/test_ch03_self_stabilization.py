"""Chapter 03's phenomenon on the quick preset: sharpening past 2/η, blow-up along u,
self-stabilisation back to 2/η, GD staying near the constrained trajectory, and the paper's
reduced cubic model predicting the measured (x, y) (Damian, Nichani, Lee 2023)."""

import pytest

from eoslab.chapters.ch02_edge_of_stability.experiment import initial_sharpness
from eoslab.chapters.ch03_self_stabilization import charts
from eoslab.chapters.ch03_self_stabilization.app import LR_SPAN, SelfStabilizationApp
from eoslab.chapters.ch03_self_stabilization.constrained import blowup_start, predicted_xy
from eoslab.chapters.ch03_self_stabilization.experiment import experiment
from eoslab.chapters.ch03_self_stabilization.meta import PRESETS
from eoslab.chapters.presets import get_preset


@pytest.mark.slow  # a projection (Lanczos + third derivative) per step
def test_the_four_phase_cycle_the_constrained_trajectory_and_the_predicted_xy():
    preset = get_preset("03", "quick")
    lr = preset.lr
    result = experiment(preset, {"lr": lr})
    assert result["status"] == "finished"
    s = result["summary"]
    assert s is not None, "phase 1: progressive sharpening should carry S past 2/η"
    # phase 2: once S > 2/η, the displacement along u blows up by orders of magnitude
    assert s["peak_y"] > 0.1 * (2 / lr) and s["max_abs_x"] > 1e3 * max(s["x_at_entry"], 1e-9)
    assert s["blowups"] >= 1
    # phase 3-4: the cubic term brings S back to (below) the edge after the overshoot
    assert s["return_y"] < 0.15 * s["peak_y"], s
    # the constrained trajectory respects S <= 2/η (projection tolerance) ...
    assert s["dagger_max_ratio"] <= 1.0 + 2 * preset.projection.rtol, s
    # ... and GD stays close to it compared with how far it travels (within 25%)
    assert s["max_distance"] < 0.25 * s["travel"], s
    # the reduced cubic model, iterated from the measured (x, y) where |x| starts to grow,
    # predicts the overshoot of y = S - 2/η within 20% and its step within 5 steps
    p = result["prediction"]
    assert p is not None and p["start"] < p["peak_step"], p
    assert abs(p["pred_peak_y"] - p["peak_y"]) <= 0.2 * p["peak_y"], p
    assert abs(p["pred_peak_step"] - p["peak_step"]) <= 5, p
    # and it predicts self-stabilisation: y back to 0 after the peak
    assert p["pred_end"] > p["pred_peak_step"], p
    shown = result["datasets"]
    assert {r["curve"] for r in shown["y"]} == {charts.MEASURED, charts.PREDICTED}


def test_the_cubic_model_is_the_papers_recursion():
    lr, alpha, beta = 0.5, 0.2, 8.0
    rows = [{"step": s, "x": 1e-3 if s == 0 else 9.0, "y": 0.4 if s == 0 else 9.0,
             "alpha": alpha, "beta": beta} for s in range(0, 200, 4)]
    pred = predicted_xy(rows, lr, start=0)
    x, y = 1e-3, 0.4
    for row in pred[1:]:
        x, y = -(1 + lr * y) * x, y + lr * (alpha - beta * x * x / 2)
        assert (row["x"], row["y"]) == pytest.approx((x, y), rel=1e-12)
    peak = max(r["y"] for r in pred)
    assert peak > 0.4 and pred[-1]["y"] <= 0 < pred[-2]["y"], "stops once y is back at 0"
    assert predicted_xy(rows, lr, start=3) == []


def test_blowup_start_skips_the_noise_before_the_growth():
    xs = [0.0, 2e-9, 1e-4, 5e-5, 2e-4, 1e-3, 1e-2, 0.2, 0.03]
    rows = [{"step": 2 * i, "x": x, "y": -0.1 if i < 2 else 0.5} for i, x in enumerate(xs)]
    assert blowup_start(rows) == 6  # 5e-5 at step 6, then growing up to 0.2 at step 14
    assert blowup_start([{"step": 0, "x": 1.0, "y": -1.0}]) is None


@pytest.mark.parametrize("name", ["quick", "default"])
def test_preset_lr_edge_is_two_over_the_initial_sharpness(name):
    preset = PRESETS[name]
    assert preset.lr_edge == pytest.approx(2 / initial_sharpness(preset.net), rel=0.05)
    assert preset.lr < preset.lr_edge, "GD starts below the edge: sharpening must reach it"


def test_chart_data_has_readable_curve_names_and_no_placeholders():
    spec = charts.cycle_layout(0.66, 84).to_dict()
    assert all(rows == [] for rows in spec["datasets"].values())
    titles = []

    def walk(node):
        if isinstance(node, dict):
            titles.extend(str(v) for k, v in node.items() if k == "title")
            titles.extend(str(v) for k, v in node.items() if k == "domain")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    words = " ".join(titles)
    assert "2/η" in words and "θ†" in words
    for raw in ("dagger", "_", "theta", "eta"):
        assert raw not in words.replace("η", ""), raw
    rows = [{"step": 0, "loss": 1.0, "dagger_loss": 1.0, "sharpness": 2.0,
             "dagger_sharpness": 2.0, "x": 0.0, "y": -1.0, "distance": 0.0, "travel": 0.0},
            {"step": 2, "loss": None, "dagger_loss": 0.9, "sharpness": 3.1,
             "dagger_sharpness": 3.0, "x": 1e-3, "y": 0.07, "distance": 1e-3, "travel": 0.1}]
    data = charts.cycle_data(rows, [{"step": 1, "x": 1.0, "y": 0.0},
                                    {"step": 2, "x": 2e-3, "y": 0.1}], 0.66)
    assert [r["v"] for r in data["x"]] == [1e-3, 2e-3]  # no log(0), prediction at records
    assert [r["curve"] for r in data["loss"]] == ["GD", "θ† constrained", "θ† constrained"]
    assert all(r["v"] is not None for rows in data.values() for r in rows if "v" in r)


def test_app_slider_spans_the_preset_edge():
    preset = get_preset("03", "quick")
    app = SelfStabilizationApp(preset, chart_mode="jupyter", auto_run=False, store=False)
    w = app.sliders["lr"]
    assert (w.min, w.max) == pytest.approx((LR_SPAN[0] * preset.lr_edge,
                                            LR_SPAN[1] * preset.lr_edge), rel=5e-3)
    assert "edge 2/λ₀ ≈ 0.81" in w.description
