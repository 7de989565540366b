"""ChapterApp, the one lifecycle: runs, live datasets, the store, divergence, presets, live mode."""

import altair as alt
import pytest

from eoslab.core.store import RunStore
from eoslab.ui.app import ChapterApp, divergence_text


def _toy_experiment(preset, settings, *, emit=None, stop=None):
    """A formula of the step size instead of training; diverges above 2."""
    _Toy.calls += 1
    lr = settings["lr"]
    emit({"points": [{"x": 0, "y": lr}]}, 1)
    if lr > 2:
        return {"status": "diverged", "datasets": {"points": []},
                "diverged": {"step": 3, "loss": 1e5, "lr": lr, "stage": "toy"}}
    return {"status": "finished", "datasets": {"points": [{"x": i, "y": lr * i}
                                                          for i in range(3)]}}


class _Toy(ChapterApp):
    """An app whose experiment is a formula of the step size (no training)."""

    CHAPTER = "15"  # borrows chapter 15's presets for the dropdown
    KIND = "toy_staged"
    LR_RANGE = (0.01, 3.0, 0.01)
    calls = 0
    experiment = staticmethod(_toy_experiment)

    def layout(self, settings):
        return alt.Chart(alt.Data(name="points")).mark_line().encode(x="x:Q", y="y:Q")

    def describe(self, result):
        return f"done with {len(result['datasets']['points'])} points"


def test_result_is_stored_and_shown_at_once_for_the_same_settings(tmp_path):
    store = RunStore(tmp_path)
    app = _Toy("quick", store=store, chart_mode="svg", auto_run=False)
    assert "press Run" in app.controls.status.value
    app.run_sync()
    assert app.controls.status.value == "done with 3 points"
    lr = app.sliders["lr"].value
    assert app.chart.spec["datasets"]["points"][2]["y"] == pytest.approx(2 * lr)
    calls = _Toy.calls
    again = _Toy("quick", store=store, chart_mode="svg", auto_run=False)
    assert _Toy.calls == calls  # nothing recomputed
    assert again.controls.status.value == "done with 3 points (from the store)"
    assert again.chart.spec["datasets"]["points"] == app.chart.spec["datasets"]["points"]


def test_divergence_is_reported_in_words_and_the_app_keeps_working(tmp_path):
    app = _Toy("quick", store=RunStore(tmp_path), chart_mode="svg", auto_run=False)
    app.set(lr=2.5)
    app.run_sync()
    assert app.controls.status.value.startswith("toy diverged at step 3")
    assert "too large" in app.controls.status.value
    app.set(lr=0.5)
    assert "press Run" in app.controls.status.value  # a new setting clears the old result
    app.run_sync()
    assert app.result["status"] == "finished"
    with pytest.raises(ValueError, match="unknown control 'eta'"):
        app.set(eta=1.0)


def test_background_run_and_auto_run_on_a_slider_move(tmp_path):
    app = _Toy("quick", store=RunStore(tmp_path), chart_mode="svg", auto_run=True)
    app.set(lr=0.7)
    assert app.wait(10)
    assert app.result["status"] == "finished"
    assert app.chart.spec["datasets"]["points"][1]["y"] == pytest.approx(0.7)
    assert "(from the store)" not in app.controls.status.value


def test_divergence_text_names_the_stage():
    text = divergence_text({"diverged": {"step": 1, "loss": 2e3, "lr": 1.0, "stage": "SGD"}})
    assert text.startswith("SGD diverged at step 1: loss 2e+03")



class _Live(_Toy):
    """The same formula as a live app: every move recomputes at once, nothing is stored."""

    KIND = "toy_live"
    LIVE = True


def test_live_app_recomputes_on_every_move_without_run_button(tmp_path):
    app = _Live("quick", store=RunStore(tmp_path), chart_mode="svg")
    assert app.result["status"] == "finished"  # computed when built
    assert app.controls.box not in app.widget.children
    app.set(lr=0.25)
    assert app.chart.spec["datasets"]["points"][2]["y"] == pytest.approx(0.5)
    assert not list(tmp_path.iterdir())  # a live app stores nothing


class _Relayout(_Toy):
    """A layout that depends on the step size's side of 1, and a preset-dependent range."""

    KIND = "toy_relayout"
    layouts = 0

    def layout(self, settings):
        type(self).layouts += 1
        return super().layout(settings).properties(title=f"large: {settings['lr'] > 1}")

    def layout_signature(self, settings):
        return settings["lr"] > 1

    def slider_range(self, name, preset):
        return (0.01, 5.0) if name == "lr" and preset.name == "default" else None


def test_layout_is_redrawn_only_when_its_signature_changes(tmp_path):
    app = _Relayout("quick", store=False, chart_mode="svg", auto_run=False)
    before = _Relayout.layouts
    app.set(lr=0.5)
    assert _Relayout.layouts == before
    app.set(lr=1.5)
    assert _Relayout.layouts == before + 1 and "large: True" in str(app.chart.spec)


def test_preset_change_sets_values_and_ranges_without_running(tmp_path):
    app = _Relayout("quick", store=RunStore(tmp_path), chart_mode="svg", auto_run=True)
    calls = _Toy.calls
    app.preset_menu.value = "default"
    assert app.sliders["lr"].max == 5.0 and app.preset.name == "default"
    assert app.sliders["lr"].value == pytest.approx(app.preset["lr"])
    assert _Toy.calls == calls and not app.runner.running  # a preset change trains nothing
