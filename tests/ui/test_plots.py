"""Chart builders: checked through ``chart.to_dict()`` (valid Vega-Lite, the right data)."""

import math

import numpy as np
import pytest

from eoslab.ui import plots


def test_rows_clean_non_finite_values_and_check_lengths():
    out = plots.rows({"a": [1.0, math.inf], "b": np.array([2, 3])}, run="r")
    assert out == [{"run": "r", "a": 1.0, "b": 2}, {"run": "r", "a": None, "b": 3}]
    assert type(out[0]["b"]) is int
    with pytest.raises(ValueError, match="different lengths"):
        plots.rows({"a": [1], "b": [1, 2]})


def test_history_chart_drops_missing_and_non_positive_log_values():
    spec = plots.history_chart({"a": [{"step": 0, "loss": 1.0}, {"step": 1, "loss": 0.0},
                                      {"step": 2}], "b": [{"step": 0, "loss": 2.0}]}).to_dict()
    assert spec["datasets"]["history"] == [{"run": "a", "step": 0, "loss": 1.0},
                                           {"run": "b", "step": 0, "loss": 2.0}]
    assert spec["encoding"]["y"]["scale"]["type"] == "log"
    assert spec["encoding"]["color"]["field"] == "run"


def test_slice_surface_and_spectrum_charts():
    s = plots.slice_chart([0.0, 1.0], {"random": [1.0, 2.0], "top": [1.0, 5.0]}).to_dict()
    assert len(s["datasets"]["slice"]) == 4
    values = np.arange(6.0).reshape(2, 3) + 1
    surf = plots.surface_chart([0, 1, 2], [10, 20], values,
                               points=[{"x": 1, "y": 10, "label": "A"}]).to_dict()
    cell = [r for r in surf["datasets"]["surface"] if r["x"] == 2 and r["y"] == 20][0]
    assert cell["loss"] == values[1, 2]
    with pytest.raises(ValueError, match=r"expected \(len\(ys\), len\(xs\)\)"):
        plots.surface_chart([0, 1], [0, 1], values)
    spec = plots.spectrum_chart([0.0, 1.0], [0.5, 0.5], threshold=2.0).to_dict()
    assert spec["datasets"]["edge"] == [{"threshold": 2.0}]


def test_charts_render_offline_to_svg():
    import vl_convert as vlc

    chart = plots.slice_chart([0.0, 1.0], {"random": [1.0, 2.0]})
    svg = vlc.vegalite_to_svg(chart.to_dict())
    assert svg.startswith("<svg") and "random" in svg
