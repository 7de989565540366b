"""App pieces and the chapter apps, driven from Python as a reader would drive the widgets."""

import os
import threading
import time

import pytest

from eoslab.chapters.ch02_edge_of_stability.app import EdgeOfStabilityApp, edge_band, eos_configs
from eoslab.chapters.presets import Preset
from eoslab.ui import plots
from eoslab.ui.base import BackgroundRunner, LiveChart, Throttle, describe_divergence


def _classes(widget):
    found = set(getattr(widget, "_dom_classes", ()))
    for child in getattr(widget, "children", ()):
        found |= _classes(child)
    return found


# -- pieces ------------------------------------------------------------------------------

def test_throttle_coalesces_to_the_latest_call_and_flushes_it():
    seen, now = [], [0.0]
    t = Throttle(seen.append, 0.2, clock=lambda: now[0])
    t(1)
    now[0] = 0.05
    t(2)
    t(3)
    assert seen == [1]
    now[0] = 0.3
    t(4)
    assert seen == [1, 4]
    t.flush()
    assert seen == [1, 4]  # nothing pending
    now[0] = 0.35
    t(5)
    t.flush()
    assert seen == [1, 4, 5]
    with pytest.raises(ValueError, match="interval=-1"):
        Throttle(print, -1)


def test_background_runner_second_start_cancels_the_first_and_wait_returns():
    runner = BackgroundRunner()
    events, started = [], threading.Event()

    def slow(stop, token):
        started.set()
        stop.wait(10)
        events.append(("slow", stop.is_set(), runner.current(token)))

    runner.start(slow)
    started.wait(5)
    runner.start(lambda stop, token: events.append(("fast", stop.is_set(), runner.current(token))))
    assert runner.wait(5)
    time.sleep(0.2)
    assert ("fast", False, True) in events
    assert ("slow", True, False) in events


def test_background_runner_reports_errors():
    seen = []
    runner = BackgroundRunner(on_error=seen.append)

    def bad(stop, token):
        raise RuntimeError("boom")

    runner.start(bad)
    runner.wait(5)
    assert isinstance(runner.error, RuntimeError) and seen == [runner.error]
    with pytest.raises(RuntimeError, match="boom"):
        runner.run_sync(bad)


def test_describe_divergence_names_step_loss_and_threshold():
    text = describe_divergence(37, 1.2e4, 0.4, sharpness=6.0, momentum=0.5)
    assert text.startswith("diverged at step 37: loss 1.2e+04")
    assert "(2+2beta)/eta = 7.5" in text and "too large for this curvature" in text


@pytest.mark.parametrize("mode", ["jupyter", "svg"])
def test_live_chart_swaps_datasets_and_keeps_the_layout(mode):
    chart = LiveChart(plots.eos_chart({0.1: [{"step": 0, "loss": 1.0}]}), mode=mode)
    base = {k: v for k, v in chart.spec.items() if k != "datasets"}
    chart.update(plots.eos_data({0.2: [{"step": 0, "loss": 0.5, "sharpness": 3.0}]}))
    assert {k: v for k, v in chart.spec.items() if k != "datasets"} == base
    assert chart.spec["datasets"]["thresholds"][0]["threshold"] == pytest.approx(10.0)
    assert "eoslab-chart" in chart.widget._dom_classes
    if mode == "jupyter":
        # the figure is not re-sent (no re-embed in the browser): only its datasets change
        assert chart.widget.spec["datasets"]["thresholds"][0]["threshold"] == pytest.approx(20.0)
        assert chart.widget.datasets == chart.spec["datasets"]
    else:
        assert chart.widget.value.startswith("<svg")


# -- chapter 02 ----------------------------------------------------------------------------

def _tiny(lr=0.3, ratios=(1.0, 0.5), steps=40, sharpness_every=0):
    return Preset("02", "quick", dict(dataset="digits", model="fc-tanh", loss="mse",
                                      optimizer="gd", width=16, depth=2, momentum=0.0,
                                      n_train=64, lr=lr, lr_ratios=ratios, steps=steps,
                                      record_every=5, sharpness_every=sharpness_every),
                  "quick: tiny test preset")


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


@pytest.mark.parametrize("parallel", [True, False])
def test_eos_app_trains_streams_and_then_reuses_the_store(parallel):
    app = EdgeOfStabilityApp(_tiny(), chart_mode="jupyter", parallel=parallel, throttle=0.0)
    assert {"eoslab-run", "eoslab-stop", "eoslab-progress", "eoslab-status",
            "eoslab-lr-slider", "eoslab-preset", "eoslab-chart"} <= _classes(app.widget)
    app.run_sync()
    assert sorted(app.histories) == [0.15, 0.3]
    assert all(h[-1]["step"] == 40 for h in app.histories.values())
    shown = app.chart.spec["datasets"]["history"]
    assert {r["lr"] for r in shown} == {0.15, 0.3} and len(shown) == 2 * 9
    assert app.controls.progress.value == app.controls.progress.max == 80
    assert "finished" in app.controls.status.value
    assert "from the store" not in app.controls.status.value
    again = EdgeOfStabilityApp(_tiny(), chart_mode="jupyter", parallel=parallel)
    assert again.show_stored() == 2  # shown at once on creation
    again.run_sync()
    assert again.controls.status.value.count("(from the store)") == 2


def test_eos_app_reports_divergence_in_words():
    app = EdgeOfStabilityApp(_tiny(lr=20.0, ratios=(1.0,)), chart_mode="jupyter", store=False)
    app.run_sync()
    status = app.controls.status.value
    assert "diverged at step" in status and "too large for this curvature" in status


def test_eos_app_stop_and_second_run_cancel_the_background_job():
    app = EdgeOfStabilityApp(_tiny(steps=100000, ratios=(1.0,)), chart_mode="jupyter", store=False)
    app.run()
    deadline = time.time() + 30
    while not app.histories.get(0.3) and time.time() < deadline:
        time.sleep(0.05)
    first = app.runner._stop
    app.run()  # a second Run cancels the first
    assert first.is_set()
    time.sleep(0.3)
    app.stop()
    assert app.wait(30)
    assert "stopped at step" in app.controls.status.value
    assert app.controls.stop.disabled and app.controls.run.description == "Run"


def test_eos_app_slider_change_shows_stored_runs_or_trains():
    app = EdgeOfStabilityApp(_tiny(ratios=(1.0,)), chart_mode="jupyter", auto_run=False)
    app.run_sync()
    app.lr.value = 0.2
    assert app.histories == {} and "press Run" in app.controls.status.value
    app.lr.value = 0.3
    assert list(app.histories) == [0.3]  # back from the store without training


def test_eos_app_background_errors_reach_the_status_line_and_wait():
    preset = Preset("02", "paper", dict(_tiny().values, dataset="cifar10-1k"), "paper: test")
    app = EdgeOfStabilityApp(preset, chart_mode="jupyter", store=False)
    app.run()
    with pytest.raises((ImportError, FileNotFoundError)):
        app.wait(60)
    assert app.controls.status.value.startswith("error: ")
    assert app.controls.stop.disabled


def test_eos_app_momentum_redraws_the_layout_with_the_heavy_ball_edge():
    app = EdgeOfStabilityApp(_tiny(ratios=(1.0,)), chart_mode="jupyter", auto_run=False)
    assert "(2+2beta)/eta" not in str(app.chart.spec)
    app.momentum.value = 0.5
    assert "(2+2beta)/eta" in str(app.chart.spec)
    assert app.configs()[0].momentum == 0.5


def test_background_jobs_in_a_preheated_kernel_wait_for_the_visitor(monkeypatch):
    """A Voila pool kernel builds the app but trains only once a page takes the kernel."""
    import threading

    import voila.utils

    from eoslab.ui import base

    visitor = threading.Event()
    asked = []

    def fake_wait_for_request(url=None):
        asked.append(url)
        visitor.wait(30)
        os.environ["VOILA_PREHEAT"] = "False"  # what Voila's request info sets

    monkeypatch.setattr(voila.utils, "wait_for_request", fake_wait_for_request)
    monkeypatch.setattr(base, "_VISITOR", threading.Event())
    monkeypatch.setenv("VOILA_PREHEAT", "True")
    ran = threading.Event()
    runner = base.BackgroundRunner()
    runner.start(lambda stop, token: ran.set())
    assert not ran.wait(0.5) and runner.running and len(asked) == 1
    visitor.set()
    assert ran.wait(10) and runner.wait(10)
    runner.start(lambda stop, token: ran.set())  # later jobs do not wait again
    assert runner.wait(10) and len(asked) == 1


def test_background_jobs_elsewhere_start_at_once(monkeypatch):
    import threading

    from eoslab.ui import base

    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    monkeypatch.setattr(base, "_VISITOR", threading.Event())
    ran = threading.Event()
    base.BackgroundRunner().start(lambda stop, token: ran.set())
    assert ran.wait(10)
