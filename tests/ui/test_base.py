"""The UI pieces the apps share: throttle, background runner, live chart, visitor wait."""

import os
import threading
import time

import pytest

from eoslab.chapters.ch02_edge_of_stability import charts as plots
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
    assert "(2+2β)/η = 7.5" in text and "too large for this curvature" in text


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


def test_the_chart_lists_its_datasets_and_follows_the_run_state():
    """A figure lists every named dataset (the browser prunes the empty ones); the status
    state drives the chart's ``streaming`` flag."""
    import altair as alt

    from eoslab.ui.base import LiveChart, RunControls

    line = alt.Chart(alt.Data(name="history")).mark_line().encode(x="step:Q", y="loss:Q")
    note = alt.Chart(alt.Data(name="note")).mark_text().encode(
        x=alt.value(4), y=alt.value(4), text="note:N")
    chart = LiveChart(alt.layer(line, note), mode="jupyter")
    assert chart.spec["datasets"] == {"history": [], "note": []}
    controls = RunControls()
    controls.watchers.append(lambda state: setattr(chart, "streaming", state == "training"))
    controls.say("training ...", "training")
    assert chart.streaming and chart.widget.live.streaming
    assert "eoslab-state-training" in controls.status._dom_classes
    controls.say("diverged at step 3", "diverged")
    assert not chart.streaming
    assert "eoslab-state-diverged" in controls.status._dom_classes
    assert "eoslab-state-training" not in controls.status._dom_classes
    with pytest.raises(ValueError, match="state='bogus' is not allowed"):
        controls.say("?", "bogus")
