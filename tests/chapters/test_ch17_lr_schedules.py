"""Chapter 17's phenomenon on its quick preset, through the widget-free experiment: under
SGDR the sharpness stays at or below 2/eta(t), and the warm restart (2/eta dropping below
the sharpness) is followed by a loss spike and a fall of the sharpness to about the new
2/eta: a catapult. The range test brackets a range of rates below its blow-up."""

import pytest

from eoslab.chapters.ch17_lr_schedules.app import ScheduleApp
from eoslab.chapters.ch17_lr_schedules.experiment import experiment
from eoslab.chapters.presets import get_preset
from eoslab.optimizers.schedules import catapults, edge_ratios

QUICK = get_preset("17", "quick")


@pytest.fixture(scope="module")
def sgdr():
    """The quick preset's own settings (SGDR, one restart), trained once for the module."""
    streamed = []
    result = experiment(QUICK, {}, emit=lambda datasets, done: streamed.append(done))
    return result, streamed


def test_sgdr_restart_catapults_and_sharpness_stays_below_2_over_eta(sgdr):
    result, _ = sgdr
    history = result["history"]
    assert result["status"] == "finished"
    found = [c for c in catapults(history, window=60) if c["sharp_after"] is not None]
    assert len(found) == 1 and result["catapults"] == found
    c = found[0]
    assert c["sharp_before"] > 1.2 * c["edge"]         # the restart makes GD unstable ...
    assert c["spike"] > 1.3                              # ... the loss spikes ...
    assert c["sharp_after"] < 0.9 * c["sharp_before"]    # ... and the sharpness falls
    assert c["sharp_after"] < 1.25 * c["edge"]           # to about the new 2/eta
    restart = c["step"]
    end = result["steps"]  # the last row holds theta_T with the next cycle's eta
    calm = [r for s, r in edge_ratios(history) if not restart <= s <= restart + 60 and s < end]
    assert max(calm) < 1.15                # elsewhere the sharpness stays below ~2/eta(t)
    early = [r for s, r in edge_ratios(history) if s < restart]
    assert max(early) > 0.8                # and reaches it while eta is near its peak


def test_the_range_test_brackets_rates_below_its_blow_up(sgdr):
    rt = sgdr[0]["range_test"]
    assert rt["low"] < rt["steepest"] < rt["high"] < rt["lrs"][-1] and rt["stopped_early"]
    assert rt["losses"][-1] > 4 * min(rt["losses"])


def test_the_experiment_streams_the_curve_first_then_the_training(sgdr):
    result, streamed = sgdr
    assert streamed[0] == 0 and streamed[1] == QUICK.range_test.steps
    assert streamed == sorted(streamed)
    assert streamed[-1] == QUICK.range_test.steps + QUICK.training.steps
    assert len(result["datasets"]["curve"]) == QUICK.training.steps
    assert result["datasets"]["range"] and result["datasets"]["sharpness"]


def test_the_app_says_each_restart_and_the_range_test(sgdr):
    app = ScheduleApp("quick", store=False, chart_mode="svg", auto_run=False)
    assert app.sliders["period"].max == QUICK.training.steps
    text = app.describe(sgdr[0])
    assert "restart at step" in text and "range test:" in text
    app.preset_menu.value = "default"
    assert app.sliders["period"].max == get_preset("17", "default").training.steps


def test_stop_ends_the_background_run_at_once():
    app = ScheduleApp("quick", store=False, auto_run=False)
    app.run()
    assert app.runner.running
    app.stop()
    assert app.wait(60) and not app.runner.running
    assert app.result["status"] == "stopped" and app.controls.stop.disabled
    assert app.controls.status.value.startswith("stopped")


def test_the_status_names_the_state_computed_from_the_panels(sgdr):
    result = sgdr[0]
    ratios = edge_ratios(result["history"])
    # the quick run ends at eta_min after a cosine decay: S below 0.9 x 2/eta means training
    # (not at the edge), and the loss fell below half its first value
    expected = "oscillating" if ratios[-2][1] >= 0.9 else "training"  # [-1]: theta_T
    assert result["state"] == expected
    assert result["history"][-1]["loss"] < 0.5 * result["history"][0]["loss"]
    text = ScheduleApp("quick", store=False, chart_mode="svg", auto_run=False).describe(result)
    assert text.startswith(("training", "oscillating")) and "2/η(t)" in text


def test_lr_edge_is_two_over_the_initial_sharpness_and_spans_the_slider():
    # lr_edge = 2 / lambda_max at the initialisation, recomputed by Lanczos (margin 1%)
    from eoslab.curvature.eigen import top_eigen
    from eoslab.curvature.hessian import HessianOperator
    from eoslab.curvature.objective import Objective
    for name in ("quick", "default"):
        preset = get_preset("17", name)
        data, model = preset.net.build()
        op = HessianOperator(Objective(model, preset.net.loss, data.x_train, data.y_train))
        edge = 2 / float(top_eigen(op, tol=1e-8).values[0])
        assert abs(preset.lr_edge - edge) < 0.01 * edge, (name, preset.lr_edge, edge)
    app = ScheduleApp("quick", store=False, chart_mode="svg", auto_run=False)
    lr = app.sliders["lr"]
    low, high = ScheduleApp.LR_SPAN
    assert lr.min == pytest.approx(low * QUICK.lr_edge, rel=0.01)
    assert lr.max == pytest.approx(high * QUICK.lr_edge, rel=0.01)
    assert lr.min < QUICK.lr < QUICK.lr_edge < lr.max and "edge 0.5" in lr.description


def test_log_axes_thin_their_labels():
    """Log axes label at most ~5 ticks and drop overlapping labels ("0.010.02" before)."""
    from eoslab.chapters.ch17_lr_schedules.charts import schedule_layout
    spec = str(schedule_layout().to_dict())
    assert spec.count("'labelOverlap': 'greedy'") >= 4 and "eta" not in spec
