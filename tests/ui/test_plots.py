"""Chart builders: checked through ``chart.to_dict()`` (valid Vega-Lite, the right data)."""

import math

import numpy as np
import pytest

from eoslab.chapters.ch01_quadratic_stability.quadratic import Quadratic, simulate
from eoslab.ui import plots


def _marks(spec):
    """Every (mark type, data name) pair in a (nested) spec."""
    found = []

    def walk(node, data=None):
        if isinstance(node, dict):
            data = node.get("data", {}).get("name", data) if isinstance(node.get("data"), dict) \
                else data
            if "mark" in node:
                mark = node["mark"]
                found.append((mark if isinstance(mark, str) else mark["type"], data))
            for key in ("layer", "hconcat", "vconcat", "concat"):
                for child in node.get(key, []):
                    walk(child, data)

    walk(spec)
    return found


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


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_eos_chart_has_threshold_lines_at_two_plus_two_beta_over_eta(momentum):
    histories = {0.4: [{"step": 0, "loss": 1.0, "sharpness": 4.0}, {"step": 10, "loss": 0.5}],
                 0.2: [{"step": 0, "loss": 1.0, "sharpness": 4.0}]}
    spec = plots.eos_chart(histories, momentum=momentum).to_dict()
    edges = {r["lr"]: r["threshold"] for r in spec["datasets"]["thresholds"]}
    assert edges == pytest.approx({0.4: (2 + 2 * momentum) / 0.4,
                                   0.2: (2 + 2 * momentum) / 0.2})
    rows = spec["datasets"]["history"]
    first = [r for r in rows if r["lr"] == 0.4 and r["step"] == 0][0]
    assert first["ratio"] == pytest.approx(4.0 / edges[0.4])
    assert first["time"] == 0.0
    later = [r for r in rows if r["lr"] == 0.4 and r["step"] == 10][0]
    assert later["sharpness"] is None and later["ratio"] is None
    assert later["time"] == pytest.approx(4.0)
    assert ("rule", "thresholds") in _marks(spec)
    assert "(2+2beta)/eta" in str(spec) if momentum else "2/eta" in str(spec)


def test_eos_layout_does_not_depend_on_the_data():
    a = plots.eos_chart({0.1: [{"step": 0, "loss": 1.0}]}).to_dict()
    b = plots.eos_chart({0.3: [{"step": 5, "loss": 2.0, "sharpness": 1.0}]}).to_dict()
    a.pop("datasets"), b.pop("datasets")
    assert a == b


def test_quadratic_chart_carries_the_exact_trajectory_and_verdict():
    q = Quadratic((2.0, 0.5), angle=30.0)
    traj = simulate(q, (1.5, 1.0), 1.2, 40)
    spec = plots.quadratic_chart(q, traj, view=2.0, max_lr=3.0).to_dict()
    data = spec["datasets"]
    assert [r["x"] for r in data["trajectory"]] == pytest.approx(traj.points[:, 0].tolist())
    assert data["current"][0]["verdict"] == "diverges"
    assert data["thresholds"] == [{"method": "GD", "threshold": 1.0}]
    rates = data["rates"]
    assert max(r["lr"] for r in rates) == pytest.approx(3.0)
    # the GD curve crosses 1 at the threshold 2/lambda_max = 1
    below = [r["rate"] for r in rates if r["lr"] < 0.99]
    above = [r["rate"] for r in rates if r["lr"] > 1.01]
    assert max(below) < 1 < min(above)
    assert spec["hconcat"][0]["layer"][0]["encoding"]["x"]["scale"]["domain"] == [-2.0, 2.0]


def test_quadratic_chart_with_momentum_adds_the_heavy_ball_threshold():
    q = Quadratic((2.0, 0.5))
    traj = simulate(q, (1.0, 1.0), 0.5, 10, momentum=0.5)
    data = plots.quadratic_chart(q, traj).to_dict()["datasets"]
    assert sorted(r["threshold"] for r in data["thresholds"]) == pytest.approx([1.0, 1.5])


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

    q = Quadratic((2.0, 0.5))
    svg = vlc.vegalite_to_svg(plots.quadratic_chart(q, simulate(q, (1, 1), 0.5, 5)).to_dict())
    assert svg.startswith("<svg") and "GD path" in svg


def test_eos_data_marks_where_each_run_first_reaches_its_edge():
    histories = {0.5: [{"step": 0, "loss": 1.0, "sharpness": 3.0},
                       {"step": 10, "loss": 0.5, "sharpness": 4.1},
                       {"step": 20, "loss": 0.4, "sharpness": 4.2}],
                 0.1: [{"step": 0, "loss": 1.0, "sharpness": 3.0}]}
    data = plots.eos_data(histories)
    assert data["crossings"] == [{"run": "eta = 0.5", "lr": 0.5, "step": 10, "time": 5.0}]
    assert ("rule", "crossings") in _marks(plots.eos_chart(histories).to_dict())
