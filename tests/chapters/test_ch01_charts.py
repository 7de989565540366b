"""Chapter 01's chart builders, checked through ``chart.to_dict()`` (valid Vega-Lite, data)."""


import pytest

from eoslab.chapters.ch01_quadratic_stability import charts
from eoslab.chapters.ch01_quadratic_stability.quadratic import Quadratic, simulate


def test_quadratic_chart_carries_the_exact_trajectory_and_verdict():
    q = Quadratic((2.0, 0.5), angle=30.0)
    traj = simulate(q, (1.5, 1.0), 1.2, 40)
    spec = charts.quadratic_chart(q, traj, view=2.0, max_lr=3.0).to_dict()
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
    data = charts.quadratic_chart(q, traj).to_dict()["datasets"]
    assert sorted(r["threshold"] for r in data["thresholds"]) == pytest.approx([1.0, 1.5])


def test_quadratic_chart_renders_offline_to_svg():
    import vl_convert as vlc

    q = Quadratic((2.0, 0.5))
    svg = vlc.vegalite_to_svg(charts.quadratic_chart(q, simulate(q, (1, 1), 0.5, 5)).to_dict())
    assert svg.startswith("<svg") and "GD path" in svg
