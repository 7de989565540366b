"""Chapter 14's phenomenon on its quick preset, through the app the chapter uses."""

import pytest

from eoslab.chapters.ch14_mode_connectivity.app import ModeConnectivityApp


@pytest.fixture(scope="module")
def quick_result():
    app = ModeConnectivityApp("quick", store=False, chart_mode="svg", auto_run=False)
    app.run_sync()
    return app


def test_straight_line_has_a_barrier_the_trained_curve_removes(quick_result):
    result = quick_result.result
    assert result["status"] == "finished"
    line = result["line"]["loss"]
    ends = max(line[0], line[-1])
    assert result["barrier_line"] > 0.3 and max(line) > 20 * ends
    assert result["barrier_curve"] < result["barrier_line"] / 10
    assert min(result["curve"]["test_acc"]) > min(result["line"]["test_acc"]) + 0.05


def test_the_curve_lies_in_the_plane_through_w1_w2_and_the_bend(quick_result):
    plane = quick_result.result["plane"]
    assert plane["off_plane"] < 1e-3
    (x0, y0), (x1, y1) = plane["curve"][0], plane["curve"][-1]
    assert (x0, y0) == pytest.approx(plane["anchors"][0], abs=1e-4)
    assert (x1, y1) == pytest.approx(plane["anchors"][1], abs=1e-4)
    mid = plane["curve"][len(plane["curve"]) // 2]
    assert mid[1] > 0.25 * plane["anchors"][2][1], "the curve bends away from the segment"


def test_fge_ensemble_beats_its_typical_member(quick_result):
    fge = quick_result.result["fge"]
    assert len(fge) >= 3
    singles = sorted(r["single_loss"] for r in fge)
    assert fge[-1]["ensemble_loss"] < singles[len(singles) // 2]
    assert fge[-1]["ensemble_acc"] > sum(r["single_acc"] for r in fge) / len(fge)


def test_divergent_step_size_is_reported_and_the_app_recovers():
    app = ModeConnectivityApp("quick", store=False, chart_mode="svg", auto_run=False)
    app.set(lr=app.lr.max)
    app.run_sync()
    assert app.result["status"] == "diverged"
    assert "diverged at step" in app.controls.status.value
    # the browser suite reads a status with "training" in it as a run still in progress
    assert "training" not in app.controls.status.value.lower()
    assert "too large" in app.controls.status.value
    app.set(lr=app.preset["lr"])
    app.run_sync()
    assert app.result["status"] == "finished"
