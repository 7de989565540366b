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


def test_swa_is_flatter_and_better_on_test_data_than_constant_rate_sgd(result):
    """Margins (quick, measured): sharpness SWA 1.51 vs iterates 1.79 and last iterate 1.87
    (>= 10% lower); test loss 0.062 vs 0.074 (>= 10% lower); test accuracy 0.960 vs 0.950
    (>= half a point higher); flat width 0.98 vs 0.93 (>= 3% wider): a tie fails."""
    r = result
    assert r["swa"]["sharpness"] < 0.9 * r["iterates"]["sharpness"]
    assert r["swa"]["sharpness"] < 0.9 * r["sgd"]["sharpness"]
    assert r["swa"]["test_loss"] < 0.9 * r["iterates"]["test_loss"]
    assert r["swa"]["test_loss"] < 0.9 * r["sgd"]["test_loss"]
    assert r["swa"]["test_acc"] > r["iterates"]["test_acc"] + 0.005
    assert r["swa"]["test_acc"] > r["sgd"]["test_acc"] + 0.005
    assert r["slices"]["width_swa"] > 1.03 * r["slices"]["width_sgd"]


def test_swa_matches_the_decayed_rate_baseline_and_is_flatter(result):
    """The paper's baseline is SGD with a decaying step size. On the quick preset SWA does
    not beat it on test data, it matches it: test accuracy within one point (measured
    0.9599 both) and test loss within 5% (0.0618 vs 0.0608); it ends flatter, with a top
    Hessian eigenvalue at least 10% lower (1.51 vs 1.83)."""
    d, s = result["decayed"], result["swa"]
    assert d["status"] == "finished"
    assert abs(s["test_acc"] - d["test_acc"]) < 0.01, (s["test_acc"], d["test_acc"])
    assert abs(s["test_loss"] - d["test_loss"]) < 0.05 * d["test_loss"]
    assert s["sharpness"] < 0.9 * d["sharpness"], (s["sharpness"], d["sharpness"])
    assert d["test_acc"] > result["sgd"]["test_acc"] + 0.005  # decay helps SGD as well


def test_divergent_step_size_is_reported():
    app = SWAApp("quick", store=False, chart_mode="svg", auto_run=False)
    result = experiment(get_preset("15", "quick"), {"lr": app.sliders["lr"].max})
    assert result["status"] == "diverged"
    assert result["diverged"]["stage"] == "SGD"
    text = divergence_text(result)
    assert "diverged at step" in text and "too large" in text
    assert "training" not in text.lower()  # the browser suite reads it as a run in progress
    assert result["datasets"]["history"], "the loss up to the divergence is drawn"
    notes = {n["panel"]: n["text"] for n in result["datasets"]["notes"]}
    assert set(notes) == {"training", "plane", "slices", "test error", "sharpness",
                          "train loss"}  # every panel it never reached says so in place
    step = f"step {result['diverged']['step']}"
    assert all("diverged" in text and step in text for text in notes.values()), notes


def test_lr_edge_is_the_heavy_ball_threshold_at_initialisation():
    # lr_edge = (2 + 2 beta) / lambda_max at the initialisation (Lanczos, margin 1%)
    from eoslab.curvature.eigen import top_eigen
    from eoslab.curvature.hessian import HessianOperator
    from eoslab.curvature.objective import Objective
    for name in ("quick", "default"):
        preset = get_preset("15", name)
        data, model = preset.net.build()
        op = HessianOperator(Objective(model, preset.net.loss, data.x_train, data.y_train))
        edge = (2 + 2 * preset.sgd.momentum) / float(top_eigen(op, tol=1e-8).values[0])
        assert abs(preset.lr_edge - edge) < 0.01 * edge, (name, preset.lr_edge, edge)
    quick = get_preset("15", "quick")
    lr = SWAApp("quick", store=False, chart_mode="svg", auto_run=False).sliders["lr"]
    low, high = SWAApp.LR_SPAN
    assert lr.min == pytest.approx(low * quick.lr_edge, rel=0.02)
    assert lr.max == pytest.approx(high * quick.lr_edge, rel=0.02)
    assert lr.min < quick.lr < quick.lr_edge < lr.max and "edge 1.64" in lr.description


def test_app_shows_a_stored_result_in_its_panels_and_status(tmp_path, result):
    store = RunStore(tmp_path)
    app = SWAApp("quick", store=store, chart_mode="svg", auto_run=False)
    assert app.settings() == {"lr": 0.3}
    store.save_json(app.KIND, app.key(), result)
    assert app.show_stored()
    status = app.controls.status.value
    assert result["state"] == "oscillating"  # constant-eta SGD keeps bouncing
    assert status.startswith("SGD bouncing") and "(from the store)" in status
    assert "SGD with decaying η: test acc" in status
    datasets = app.chart.spec["datasets"]
    assert datasets["swa_start"] == [{"step": 400}]
    assert datasets["plane_grid"] and datasets["slices"] and len(datasets["compare"]) == 12
    legend = str(swa_layout().to_dict()["vconcat"][0])  # the training panel names its lines
    assert "'loss on'" in legend and "train (minibatch)" in legend
    assert datasets["notes"] == []


def test_empty_figure_renders_at_a_finite_size():
    """Before a run most datasets are empty; Vega sizes a chart with an untitled colour
    legend and no data at 1.8e308 px, which collapses the page."""
    svg = vlc.vegalite_to_svg(with_datasets(swa_layout(), swa_datasets({}, 10)).to_dict())
    width, height = (float(v) for v in re.search(r'width="([^"]+)" height="([^"]+)"',
                                                 svg).groups())
    assert 100 < width < 3000 and 100 < height < 3000


@pytest.mark.slow
def test_default_preset_numbers_quoted_in_the_text():
    """The notebook quotes the default preset: SWA is the flattest (sharpness 2.5 vs the
    decaying-eta baseline's 3.9) but the baseline generalises better (test accuracy 0.971
    vs 0.966, test loss 0.046 vs 0.064). Recomputed (margins: 5% on sharpness and loss,
    0.002 on accuracy) and the ordering asserted."""
    r = experiment(get_preset("15", "default"), {})
    s, d = r["swa"], r["decayed"]
    assert s["sharpness"] == pytest.approx(2.5, rel=0.05)
    assert d["sharpness"] == pytest.approx(3.9, rel=0.05)
    assert s["test_acc"] == pytest.approx(0.966, abs=0.002)
    assert d["test_acc"] == pytest.approx(0.971, abs=0.002)
    assert s["test_loss"] == pytest.approx(0.064, rel=0.05)
    assert d["test_loss"] == pytest.approx(0.046, rel=0.05)
    assert d["test_acc"] > s["test_acc"] and s["sharpness"] < 0.8 * d["sharpness"]
