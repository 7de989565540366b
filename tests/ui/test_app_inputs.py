"""Apps validate their own inputs: a value a control sends is checked before it is used.

A client of a served app talks to the kernel's widgets directly: it can widen a slider
(``max = 1e308``) and then send ``1e300``, or send NaN.  Widgets take such a message
through ``Widget.set_state``, which these tests call as the kernel's comm handler does.
The value must be refused in place (the control goes back to its last good value and
range, the status line says why) and never reach the experiment, and no exception may
leave a widget callback (in a kernel it would be sent to the client as a traceback).
"""

import importlib
import inspect
import math

import altair as alt
import ipywidgets as widgets
import pytest

from eoslab.chapters.presets import CHAPTER_SLUGS
from eoslab.ui.app import ChapterApp

NUMBERS = sorted(CHAPTER_SLUGS)


def app_class(number: str) -> type[ChapterApp]:
    """The one ChapterApp subclass of chapter ``number``."""
    module = importlib.import_module(f"eoslab.chapters.ch{number}_{CHAPTER_SLUGS[number]}.app")
    return next(obj for obj in vars(module).values() if inspect.isclass(obj)
                and issubclass(obj, ChapterApp) and obj.__module__ == module.__name__)


class _Toy(ChapterApp):
    """A formula of the step size, with an integer and a choice control besides."""

    CHAPTER = "15"  # borrows chapter 15's presets
    KIND = "toy_inputs"
    LR_RANGE = (0.01, 3.0, 0.01)

    def __init__(self, *args, **kwargs):
        self.calls = []
        super().__init__(*args, **kwargs)

    def compute(self, settings, emit, stop):
        self.calls.append(dict(settings))
        if settings["lr"] > 2.5:
            raise RuntimeError("the formula broke in /srv/secret/module.py " + "x" * 500)
        return {"status": "finished", "datasets": {"points": [{"x": 0, "y": settings["lr"]}]}}

    def make_sliders(self):
        return {"k": widgets.IntSlider(value=3, min=1, max=10, description="inner steps k"),
                "kind": widgets.Dropdown(options=[("Bezier", "bezier"), ("chain", "polychain")],
                                         value="bezier", description="curve")}

    def slider_range(self, name, preset):
        return (0.01, 5.0) if name == "lr" and preset.name == "default" else None

    def layout(self, settings):
        return alt.Chart(alt.Data(name="points")).mark_point().encode(x="x:Q", y="y:Q")

    def describe(self, result):
        return f"computed with lr = {result['datasets']['points'][0]['y']:.3g}"


class _LiveToy(_Toy):
    KIND, LIVE = "toy_inputs_live", True


@pytest.fixture
def app():
    return _Toy("quick", store=False, chart_mode="svg", auto_run=False)


def test_a_widened_slider_sending_1e300_is_refused_in_place(app):
    lr = app.sliders["lr"]
    good = lr.value
    lr.set_state({"max": 1e308, "value": 1e300})  # one message, as a client would send it
    assert lr.value == good and (lr.min, lr.max) == (0.01, 3.0)
    assert app.controls.status.value == "refused: step size η = 1e+300 is outside [0.01, 3]"
    assert app.calls == []
    app.run_sync()  # Run computes the good value, never the refused one
    assert [c["lr"] for c in app.calls] == [pytest.approx(good)]


@pytest.mark.parametrize("bad, why", [
    (float("nan"), "nan is not a finite number"), (float("inf"), "inf is not a finite number"),
    (-1e308, "-1e+308 is outside [0.01, 3]")])
def test_non_finite_and_far_values_are_refused(app, bad, why):
    lr = app.sliders["lr"]
    good = lr.value
    lr.set_state({"min": -math.inf, "max": math.inf, "value": bad})
    assert lr.value == good and (lr.min, lr.max) == (0.01, 3.0)
    assert app.controls.status.value == f"refused: step size η = {why}"
    assert app.calls == []


def test_integer_and_choice_controls_are_checked_too(app):
    app.sliders["k"].set_state({"max": 10**30, "value": 10**20})
    assert app.sliders["k"].value == 3 and app.sliders["k"].max == 10
    assert app.controls.status.value == "refused: inner steps k = 1e+20 is outside [1, 10]"
    app.sliders["kind"].set_state({"index": None})  # no choice at all
    assert app.sliders["kind"].value == "bezier"
    assert app.controls.status.value == ("refused: curve = None is not one of bezier, "
                                         "polychain")
    assert app.calls == []


def test_a_good_value_runs(tmp_path):
    app = _Toy("quick", store=False, chart_mode="svg", auto_run=True)
    app.sliders["lr"].set_state({"value": 0.5})
    assert app.wait(30)
    assert [c["lr"] for c in app.calls] == [0.5]
    assert app.controls.status.value == "computed with lr = 0.5"
    app.sliders["lr"].set_state({"max": 1e308, "value": 1e300})  # refused: the result stays
    assert app.sliders["lr"].value == 0.5 and len(app.calls) == 1
    assert app.chart.spec["datasets"]["points"] == [{"x": 0, "y": 0.5}]


def test_the_allowed_range_follows_the_preset(app):
    lr = app.sliders["lr"]
    app.preset_menu.value = "default"  # slider_range: (0.01, 5) under this preset
    lr.set_state({"value": 4.0})
    assert lr.value == 4.0 and app.controls.status.value.startswith("press Run")
    app.preset_menu.value = "quick"  # back to the range the slider was built with
    lr.set_state({"max": 5.0, "value": 4.0})
    assert lr.value != 4.0 and lr.max == 3.0
    assert "outside [0.01, 3]" in app.controls.status.value


def test_a_refused_value_that_slipped_into_the_settings_is_never_computed(app, monkeypatch):
    monkeypatch.setattr(app, "settings", lambda: {"lr": 1e300, "k": 3, "kind": "bezier"})
    app.run_sync()
    assert app.calls == [] and app.controls.status.value.startswith("refused: step size η")


def test_an_error_in_a_callback_stays_in_the_status_line():
    app = _LiveToy("quick", store=False, chart_mode="svg")
    app.sliders["lr"].set_state({"value": 2.9})  # the formula raises: nothing propagates
    status = app.controls.status.value
    assert status.startswith("error: RuntimeError: the formula broke in")
    assert len(status) < 260 and "Traceback" not in status
    app.preset_menu.value = "default"  # the preset's own values are fine again
    assert app.controls.status.value.startswith("computed with")


@pytest.mark.parametrize("number", NUMBERS)
def test_every_chapter_app_refuses_values_outside_its_controls(number, monkeypatch):
    """A real app (store=False, auto_run=False): every control, far out and NaN, never
    reaches the experiment; a good step size does."""
    cls = app_class(number)
    seen = []

    def stand_in(preset, settings, *, emit=None, stop=None):
        seen.append(dict(settings))
        return {"status": "finished", "datasets": {}}

    monkeypatch.setattr(cls, "experiment", staticmethod(stand_in))
    monkeypatch.setattr(cls, "describe", lambda self, result: "ran")
    app = cls("quick", store=False, chart_mode="svg", auto_run=False)
    before = len(seen)  # a live app computed once when built
    for name, control in app.sliders.items():
        good = control.value
        if hasattr(control, "options"):
            control.set_state({"index": None})
        else:
            control.set_state({"max": 1e308, "value": 1e300})
            assert control.max < 1e308, name
            if isinstance(control, widgets.FloatSlider):
                assert control.value == good, name
                control.set_state({"value": float("nan")})
        assert control.value == good, name
        assert app.controls.status.value.startswith("refused: "), (name,
                                                                   app.controls.status.value)
    assert len(seen) == before, "the experiment ran with a refused value"
    lr = app.sliders["lr"]
    target = round(lr.min + 0.5 * (lr.max - lr.min), 2)
    lr.set_state({"value": target})
    if not app.LIVE:
        app.run_sync()
    assert len(seen) == before + 1 and seen[-1]["lr"] == pytest.approx(target)
