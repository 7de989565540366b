"""Chapter 02 (Cohen et al., ICLR 2021, arXiv 2103.00065): full-batch GD's sharpness rises to
2/eta and hovers there, through the widget-free experiment; and the app around it."""

import threading
import time

import pytest

from eoslab.chapters.ch02_edge_of_stability.app import EdgeOfStabilityApp
from eoslab.chapters.ch02_edge_of_stability.experiment import edge_band, eos_configs, experiment
from eoslab.chapters.ch02_edge_of_stability.meta import EdgeOfStabilityPreset
from eoslab.chapters.presets import get_preset
from eoslab.core.netspec import NetSpec


def _classes(widget):
    found = set(getattr(widget, "_dom_classes", ()))
    for child in getattr(widget, "children", ()):
        found |= _classes(child)
    return found


def _tiny(lr=0.3, ratios=(1.0, 0.5), steps=40, sharpness_every=0, dataset="digits"):
    return EdgeOfStabilityPreset(
        name="quick", label="quick: tiny test preset",
        net=NetSpec(dataset=dataset, n_train=64, model="fc-tanh", width=16, depth=2, loss="mse"),
        optimizer="gd", momentum=0.0, lr=lr, lr_ratios=ratios, steps=steps, record_every=5,
        sharpness_every=sharpness_every)


def test_eos_configs_follow_the_ratios_largest_first():
    configs = eos_configs(_tiny(lr=0.4, ratios=(0.5, 1.0, 0.25)), momentum=0.5)
    assert [c.lr for c in configs] == [0.4, 0.2, 0.1]
    assert all(c.momentum == 0.5 and c.sharpness_every == 0 for c in configs)


def test_edge_band_reads_the_second_half():
    rows = [{"step": s, "sharpness": v} for s, v in [(0, 1.0), (50, 2.0), (60, 5.0), (100, 4.0)]]
    assert edge_band(rows, lr=0.4) == (0.4, 0.8, 1.0)  # 2/eta = 5; steps >= 50 only
    assert edge_band([{"step": 0}], lr=0.4) is None
    with pytest.raises(ValueError, match="last=0"):
        edge_band(rows, 0.4, last=0)


def test_quick_run_reaches_and_hovers_at_the_edge():
    preset = get_preset("02", "quick")
    result = experiment(preset, {"lr": preset.lr, "momentum": preset.momentum}, store=False)
    assert result["status"] == "finished"
    (run,) = result["runs"]
    lr = run["lr"]
    history = result["datasets"]["history"]
    edge = 2 / lr
    sharp = [(r["step"], r["sharpness"]) for r in history if r.get("sharpness") is not None]
    assert sharp[0][1] < 0.95 * edge, "the quick run should start below the edge"
    band = edge_band(history, lr)
    assert band is not None and 0.85 <= band[0] and band[2] <= 1.35, band
    assert run["band"] == list(band)
    losses = [r["loss"] for r in history]
    assert losses[-1] < 0.5 * losses[0]
    rises = sum(b > a for a, b in zip(losses, losses[1:]))
    assert rises >= 2, "at the edge the loss should no longer fall monotonically"


def test_experiment_streams_every_step_size_and_reuses_stored_runs():
    seen = []
    result = experiment(_tiny(), {"lr": 0.3, "momentum": 0.0},
                        emit=lambda data, done: seen.append((data, done)))
    assert [r["lr"] for r in result["runs"]] == [0.3, 0.15]
    assert {r["lr"] for r in result["datasets"]["history"]} == {0.15, 0.3}
    assert len(result["datasets"]["history"]) == 2 * 9
    assert seen[-1][1] == 80 and seen[-1][0]["history"] == result["datasets"]["history"]
    assert not any(r["from_store"] for r in result["runs"])
    again = experiment(_tiny(), {"lr": 0.3, "momentum": 0.0})  # the default run store
    assert all(r["from_store"] for r in again["runs"])
    assert again["datasets"] == result["datasets"]


def test_every_step_size_diverging_is_a_divergence_in_words():
    result = experiment(_tiny(lr=20.0, ratios=(1.0,)), {"lr": 20.0, "momentum": 0.5},
                        store=False)
    assert result["status"] == "diverged"
    assert result["diverged"]["lr"] == 20.0 and result["diverged"]["momentum"] == 0.5
    app = EdgeOfStabilityApp(_tiny(lr=20.0, ratios=(1.0,)), chart_mode="jupyter", store=False)
    app.set(momentum=0.5)
    app.run(wait=True)
    status = app.controls.status.value
    assert "diverged at step" in status and "(2+2beta)/eta" in status


def test_a_set_stop_ends_the_experiment_as_stopped():
    stop = threading.Event()
    stop.set()
    result = experiment(_tiny(), {"lr": 0.3, "momentum": 0.0}, stop=stop, store=False)
    assert result["status"] == "stopped" and len(result["runs"]) == 1


def test_app_trains_then_shows_the_stored_result():
    app = EdgeOfStabilityApp(_tiny(), chart_mode="jupyter", throttle=0.0, auto_run=False)
    assert {"eoslab-app", "eoslab-run", "eoslab-stop", "eoslab-progress", "eoslab-status",
            "eoslab-lr-slider", "eoslab-momentum-slider", "eoslab-preset",
            "eoslab-chart"} <= _classes(app.widget)
    app.run(wait=True)
    shown = app.chart.spec["datasets"]["history"]
    assert {r["lr"] for r in shown} == {0.15, 0.3} and len(shown) == 2 * 9
    assert app.controls.progress.value == app.controls.progress.max == 80
    assert app.controls.status.value.count("finished") == 2
    assert "from the store" not in app.controls.status.value
    again = EdgeOfStabilityApp(_tiny(), chart_mode="jupyter", auto_run=False)
    assert "(from the store)" in again.controls.status.value  # shown at once on creation
    assert again.datasets["history"] == shown


def test_app_stop_ends_a_background_run():
    app = EdgeOfStabilityApp(_tiny(steps=100000, ratios=(1.0,)), chart_mode="jupyter",
                             store=False, auto_run=False)
    app.run()
    deadline = time.time() + 30
    while not app.datasets["history"] and time.time() < deadline:
        time.sleep(0.05)
    app.stop()
    assert app.wait(30)
    assert "stopped" in app.controls.status.value
    assert app.controls.stop.disabled and app.controls.run.description == "Run"


def test_app_background_errors_reach_the_status_line_and_wait():
    app = EdgeOfStabilityApp(_tiny(dataset="cifar10-1k"), chart_mode="jupyter", store=False,
                             auto_run=False)
    app.run()
    with pytest.raises((ImportError, FileNotFoundError)):
        app.wait(60)
    assert app.controls.status.value.startswith("error: ")
    assert app.controls.stop.disabled


def test_app_momentum_redraws_the_layout_with_the_heavy_ball_edge():
    app = EdgeOfStabilityApp(_tiny(ratios=(1.0,)), chart_mode="jupyter", auto_run=False)
    assert "(2+2beta)/eta" not in str(app.chart.spec)
    app.momentum.value = 0.5
    assert "(2+2beta)/eta" in str(app.chart.spec)
    assert app.configs()[0].momentum == 0.5
