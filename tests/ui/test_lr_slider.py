"""The one step-size slider: range from the preset's edge, fallback, label, preset switch."""

from types import SimpleNamespace

import altair as alt
import pytest

from eoslab.chapters.presets import get_preset
from eoslab.ui import edge
from eoslab.ui.app import ChapterApp
from eoslab.ui.lr_slider import LrSlider, span_range


def _finished(preset, settings, *, emit=None, stop=None):
    return {"status": "finished", "datasets": {"points": []}}


class _Spanned(ChapterApp):
    """Chapter 15's presets (quick and default have an edge, paper has none)."""

    CHAPTER, KIND = "15", "toy_lr_slider"
    LR_RANGE = (0.01, 3.0, 0.001)
    LR_SPAN = (0.01, 2.0)
    LR_LABEL, LR_EDGE_LABEL = "step size η", "η (edge {edge:.3g})"
    experiment = staticmethod(_finished)

    def layout(self, settings):
        return alt.Chart(alt.Data(name="points")).mark_line().encode(x="x:Q", y="y:Q")

    def describe(self, result):
        return "done"


def _app(preset="quick"):
    return _Spanned(preset, store=False, chart_mode="svg", auto_run=False)


def test_the_range_is_the_span_times_the_edge_to_three_digits():
    app, quick = _app(), get_preset("15", "quick")
    lr = app.sliders["lr"]
    assert (lr.min, lr.max) == edge.lr_range_around_edge(quick.lr_edge, 0.01, 2.0)
    assert (lr.min, lr.max) == (float(f"{0.01 * quick.lr_edge:.3g}"),
                                float(f"{2.0 * quick.lr_edge:.3g}"))
    assert lr.min < quick.lr < quick.lr_edge < lr.max and lr.step == 0.001
    assert lr.description == f"η (edge {quick.lr_edge:.3g})"
    assert app.allowed_range("lr") == (lr.min, lr.max)


def test_without_an_edge_the_range_is_lr_range_and_the_plain_label():
    app = _app("paper")
    lr = app.sliders["lr"]
    assert (lr.min, lr.max) == (0.01, 3.0) and lr.description == "step size η"
    assert span_range(None, (0.1, 3.0), (0.01, 3.0)) == (0.01, 3.0)
    assert span_range(2.0, None, (0.01, 3.0)) == (0.01, 3.0)


def test_a_preset_switch_moves_the_range_and_relabels_the_slider():
    app = _app()
    lr = app.sliders["lr"]
    app.preset_menu.value = "paper"
    assert (lr.min, lr.max) == (0.01, 3.0) and lr.description == "step size η"
    app.preset_menu.value = "default"
    default = get_preset("15", "default")
    assert (lr.min, lr.max) == span_range(default.lr_edge, (0.01, 2.0), (0.01, 3.0))
    assert lr.description == f"η (edge {default.lr_edge:.3g})" and lr.value == default.lr


def test_without_a_span_the_slider_keeps_lr_range():
    class Plain(LrSlider):
        LR_RANGE = (0.05, 2.0, 0.05)

    assert Plain().slider_range("lr", SimpleNamespace(lr_edge=1.0)) is None
    assert Plain().lr_slider_range(SimpleNamespace(lr_edge=1.0)) == (0.05, 2.0)
    assert Plain().slider_range("other", None) is None


@pytest.mark.parametrize("span", [(0.5, 0.5), (0.0, 2.0), (-0.1, 2.0), (2.0, 1.0),
                                  (0.1, float("inf"))])
def test_a_bad_span_is_refused_by_name(span):
    with pytest.raises(ValueError, match="below=.*above=.*not allowed"):
        span_range(1.0, span, (0.01, 1.0))


def test_a_span_wholly_below_the_edge_is_allowed():
    assert edge.lr_range_around_edge(9.68, below=0.001, above=0.5) == (0.00968, 4.84)


def test_the_edge_label_keeps_a_gap_before_the_next_control():
    app = _app()
    margin = app.edge.widget.layout.margin.split()
    assert margin[1] == edge.GAP and int(edge.GAP.removesuffix("px")) >= 16
