"""Chapter 15's phenomenon on its quick preset, through the chapter's widget-free experiment."""

import re

import pytest
import vl_convert as vlc

from eoslab.chapters.ch15_swa.app import SWAApp
from eoslab.chapters.ch15_swa.charts import swa_datasets, swa_layout
from eoslab.chapters.ch15_swa.experiment import experiment
from eoslab.chapters.presets import get_preset
from eoslab.core.store import RunStore
from eoslab.ui.app import divergence_text
from eoslab.ui.plots import with_datasets


@pytest.fixture(scope="module")
def result():
    return experiment(get_preset("15", "quick"), {})


def test_swa_sits_lower_in_the_basin_than_the_sgd_iterates(result):
    r = result
    assert r["status"] == "finished"
    assert r["swa"]["train_loss"] < 0.7 * r["iterates"]["train_loss"]
    assert r["swa"]["train_loss"] < r["sgd"]["train_loss"]
    # on the plane, SWA is inside the cloud of iterates (not beyond the last one)
    xs = [p[0] for p in r["plane"]["iterates"]]
    assert min(xs) < r["plane"]["swa"][0] < max(xs)


def test_swa_is_flatter_and_better_on_test_data(result):
    r = result
    assert r["swa"]["sharpness"] < 0.95 * r["iterates"]["sharpness"]
    assert r["swa"]["sharpness"] < r["sgd"]["sharpness"]
    assert r["swa"]["test_loss"] < r["iterates"]["test_loss"]
    assert r["swa"]["test_acc"] > r["iterates"]["test_acc"]
    assert r["slices"]["width_swa"] >= r["slices"]["width_sgd"]


def test_divergent_step_size_is_reported():
    result = experiment(get_preset("15", "quick"), {"lr": SWAApp.LR_RANGE[1]})
    assert result["status"] == "diverged"
    assert result["diverged"]["stage"] == "SGD"
    text = divergence_text(result)
    assert "diverged at step" in text and "too large" in text
    assert "training" not in text.lower()  # the browser suite reads it as a run in progress
    assert result["datasets"]["history"], "the loss up to the divergence is drawn"


def test_app_shows_a_stored_result_in_its_panels_and_status(tmp_path, result):
    store = RunStore(tmp_path)
    app = SWAApp("quick", store=store, chart_mode="svg", auto_run=False)
    assert app.settings() == {"lr": 0.3}
    store.save_json(app.KIND, app.key(), result)
    assert app.show_stored()
    status = app.controls.status.value
    assert status.startswith("test acc: SWA") and "(from the store)" in status
    datasets = app.chart.spec["datasets"]
    assert datasets["swa_start"] == [{"step": 400}]
    assert datasets["plane_grid"] and datasets["slices"] and len(datasets["compare"]) == 9


def test_empty_figure_renders_at_a_finite_size():
    """Before a run most datasets are empty; Vega sizes a chart with an untitled colour
    legend and no data at 1.8e308 px, which collapses the page."""
    svg = vlc.vegalite_to_svg(with_datasets(swa_layout(), swa_datasets({}, 10)).to_dict())
    width, height = (float(v) for v in re.search(r'width="([^"]+)" height="([^"]+)"',
                                                 svg).groups())
    assert 100 < width < 3000 and 100 < height < 3000
