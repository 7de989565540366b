"""Chapter 15's phenomenon on its quick preset, through the app the chapter uses."""

import pytest

from eoslab.chapters.ch15_swa.app import SWAApp


@pytest.fixture(scope="module")
def app():
    app = SWAApp("quick", store=False, chart_mode="svg", auto_run=False)
    app.run_sync()
    return app


def test_swa_sits_lower_in_the_basin_than_the_sgd_iterates(app):
    r = app.result
    assert r["status"] == "finished"
    assert r["swa"]["train_loss"] < 0.7 * r["iterates"]["train_loss"]
    assert r["swa"]["train_loss"] < r["sgd"]["train_loss"]
    # on the plane, SWA is inside the cloud of iterates (not beyond the last one)
    xs = [p[0] for p in r["plane"]["iterates"]]
    assert min(xs) < r["plane"]["swa"][0] < max(xs)


def test_swa_is_flatter_and_better_on_test_data(app):
    r = app.result
    assert r["swa"]["sharpness"] < 0.95 * r["iterates"]["sharpness"]
    assert r["swa"]["sharpness"] < r["sgd"]["sharpness"]
    assert r["swa"]["test_loss"] < r["iterates"]["test_loss"]
    assert r["swa"]["test_acc"] > r["iterates"]["test_acc"]
    assert r["slices"]["width_swa"] >= r["slices"]["width_sgd"]


def test_divergent_step_size_is_reported_and_the_app_recovers():
    app = SWAApp("quick", store=False, chart_mode="svg", auto_run=False)
    app.set(lr=app.lr.max)
    app.run_sync()
    assert app.result["status"] == "diverged"
    assert "diverged at step" in app.controls.status.value
    # the browser suite reads a status with "training" in it as a run still in progress
    assert "training" not in app.controls.status.value.lower()
    app.set(lr=app.preset["lr"])
    app.run_sync()
    assert app.result["status"] == "finished"
