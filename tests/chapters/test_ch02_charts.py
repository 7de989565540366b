"""Chapter 02's chart builders, checked through ``chart.to_dict()`` (valid Vega-Lite, data)."""

import pytest
from chart_specs import marks

from eoslab.chapters.ch02_edge_of_stability import charts


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_eos_chart_has_threshold_lines_at_two_plus_two_beta_over_eta(momentum):
    histories = {0.4: [{"step": 0, "loss": 1.0, "sharpness": 4.0}, {"step": 10, "loss": 0.5}],
                 0.2: [{"step": 0, "loss": 1.0, "sharpness": 4.0}]}
    spec = charts.eos_chart(histories, momentum=momentum).to_dict()
    edges = {r["lr"]: r["threshold"] for r in spec["datasets"]["thresholds"]}
    assert edges == pytest.approx({0.4: (2 + 2 * momentum) / 0.4,
                                   0.2: (2 + 2 * momentum) / 0.2})
    rows = spec["datasets"]["history"]
    first = [r for r in rows if r["lr"] == 0.4 and r["step"] == 0][0]
    assert first["ratio"] == pytest.approx(4.0 / edges[0.4])
    assert first["time"] == 0.0
    later = [r for r in rows if r["lr"] == 0.4 and r["step"] == 10][0]
    assert later["sharpness"] is None and later["ratio"] is None
    assert later["time"] == pytest.approx(4.0 / (1 - momentum))  # heavy ball: η/(1-β) per step
    assert ("rule", "thresholds") in marks(spec)
    assert "(2+2β)/η" in str(spec) if momentum else "2/η" in str(spec)


def test_eos_layout_does_not_depend_on_the_data():
    a = charts.eos_chart({0.1: [{"step": 0, "loss": 1.0}]}).to_dict()
    b = charts.eos_chart({0.3: [{"step": 5, "loss": 2.0, "sharpness": 1.0}]}).to_dict()
    a.pop("datasets"), b.pop("datasets")
    assert a == b


def test_eos_data_marks_where_each_run_first_reaches_its_edge():
    histories = {0.5: [{"step": 0, "loss": 1.0, "sharpness": 3.0},
                       {"step": 10, "loss": 0.5, "sharpness": 4.1},
                       {"step": 20, "loss": 0.4, "sharpness": 4.2}],
                 0.1: [{"step": 0, "loss": 1.0, "sharpness": 3.0}]}
    data = charts.eos_data(histories)
    assert data["crossings"] == [{"run": "η = 0.5", "lr": 0.5, "step": 10, "time": 5.0}]
    assert ("rule", "crossings") in marks(charts.eos_chart(histories).to_dict())
