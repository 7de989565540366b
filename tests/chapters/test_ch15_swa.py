"""Chapter 15's phenomenon on its quick preset, through the chapter's widget-free experiment."""

import functools
import re
import statistics

import pytest
import vl_convert as vlc

from eoslab.chapters.ch15_swa.app import _WORDS, SWAApp
from eoslab.chapters.ch15_swa.charts import swa_datasets, swa_layout
from eoslab.chapters.ch15_swa.experiment import experiment, run_state
from eoslab.chapters.presets import get_preset
from eoslab.core.store import RunStore
from eoslab.ui.app import divergence_text
from eoslab.ui.plots import with_datasets

#: Initialisations the quick-preset claims are checked over (``net.model_seed``). One run's
#: float32 numbers move with the CPU's kernels (AMD EPYC vs Intel Xeon AVX-512 differ by up
#: to ~10% per seed), so the claims are asserted on the median over seeds or on every seed,
#: with margins from the spread measured on both machines.
SEEDS = (0, 1, 2, 3, 4)
N_TEST = 1497  # digits test examples: one example is 0.00067 of test accuracy


@pytest.fixture(scope="module")
def runs():
    preset = get_preset("15", "quick")
    return [experiment(preset.replace(net=preset.net.replace(model_seed=seed)), {})
            for seed in SEEDS]


@pytest.fixture(scope="module")
def result(runs):
    return runs[0]  # the preset's own seed


def _median(runs, value):
    return statistics.median(value(r) for r in runs)


def test_swa_sits_lower_in_the_basin_than_the_sgd_iterates(runs):
    """Train loss of SWA over the mean over the iterates, seeds 0-4 (Intel): 0.45, 0.91,
    0.43, 0.86, 0.38 (median 0.45); over the last
    iterate: 0.54, 1.87, 0.49, 0.86, 0.41 (median 0.54; seed 1's last iterate happens to
    sit low). SWA always projects inside the cloud of iterates on the plane."""
    assert all(r["status"] == "finished" for r in runs)
    assert _median(runs, lambda r: r["swa"]["train_loss"] / r["iterates"]["train_loss"]) < 0.7
    assert _median(runs, lambda r: r["swa"]["train_loss"] / r["sgd"]["train_loss"]) < 0.8
    assert all(r["swa"]["train_loss"] < r["iterates"]["train_loss"] for r in runs)
    for r in runs:  # on the plane, SWA is inside the cloud of iterates (not beyond the last)
        xs = [p[0] for p in r["plane"]["iterates"]]
        assert min(xs) < r["plane"]["swa"][0] < max(xs)


def test_swa_is_flatter_and_better_on_test_data_than_constant_rate_sgd(runs):
    """SWA against the mean over the SGD iterates and the last iterate, seeds 0-4 (Intel
    Xeon; seed 0 on the AMD EPYC machine in brackets):

    * sharpness ratio vs iterates 0.85 (0.84), 0.71, 0.89, 0.74, 0.85: median 0.85;
      vs last iterate 0.89 (0.81), 0.52, 0.88, 0.60, 0.88: median 0.88. Asserted: flatter
      on every seed and median ratio < 0.92 for both.
    * test loss ratio vs iterates 0.85 (0.84), 0.96, 0.82, 0.88, 0.81: median 0.85, lower
      on every seed; vs last iterate 0.87 (0.84), 1.20, 0.77, 0.74, 0.80: median 0.80, but
      not on every seed (seed 1's last iterate is a lucky one). Asserted: median < 0.9 for
      both, lower than the iterates' on every seed.
    * test accuracy gain in examples (of 1497) vs iterates +12 (+15), +17, +17, +31, +16:
      at least 7.5 (half a point) on every seed, asserted so; vs last iterate +1 (+15),
      -3, +20, +35, +23 (seeds 5-9: +9, +69, +12, +7, +12): a few examples either way on
      single seeds is noise, so asserted as median gain >= half a point and no seed worse
      by more than 10 examples.
    * flat width ratio 1.03 (1.05), 1.23, 1.09, 1.25, 1.08: median 1.09, wider on every
      seed (min over seeds 0-9: 1.027). Asserted: median > 1.05 and every seed > 1.
    A tie fails every median check.
    """
    ratio = functools.partial(_median, runs)
    for other in ("iterates", "sgd"):
        assert all(r["swa"]["sharpness"] < r[other]["sharpness"] for r in runs), other
        assert ratio(lambda r, o=other: r["swa"]["sharpness"] / r[o]["sharpness"]) < 0.92, other
        assert ratio(lambda r, o=other: r["swa"]["test_loss"] / r[o]["test_loss"]) < 0.9, other
        assert ratio(lambda r, o=other: r["swa"]["test_acc"] - r[o]["test_acc"]) > 0.005, other
    assert all(r["swa"]["test_loss"] < r["iterates"]["test_loss"] for r in runs)
    assert all(r["swa"]["test_acc"] > r["iterates"]["test_acc"] + 0.005 for r in runs)
    assert all(r["swa"]["test_acc"] > r["sgd"]["test_acc"] - 10 / N_TEST for r in runs)
    assert ratio(lambda r: r["slices"]["width_swa"] / r["slices"]["width_sgd"]) > 1.05
    assert all(r["slices"]["width_swa"] > r["slices"]["width_sgd"] for r in runs)


def test_swa_matches_the_decayed_rate_baseline_and_is_flatter(runs):
    """The paper's baseline is SGD with a decaying step size. On the quick preset SWA does
    not beat it on test data, it roughly ties with it. Seeds 0-4 (Intel Xeon; seed 0 on the
    AMD EPYC machine in brackets, where both had test accuracy 0.9599):

    * test accuracy SWA minus baseline in examples -5 (0), -9, +2, -5, -3 (seeds 0-9
      within -9..+4). Asserted: within 15 examples (one point) on every seed.
    * test loss ratio SWA / baseline 1.05 (1.02), 1.31, 1.01, 1.28, 1.02: median 1.05 (1.04
      over seeds 0-9); SWA is about 5% worse in the median, 30% worse on the two seeds
      where SGD bounces most. Asserted: median ratio within 10% of 1.
    * sharpness ratio 0.84 (0.83), 0.96, 0.84, 0.91, 0.83: median 0.84, flatter on every
      seed (max over seeds 0-9: 0.96). Asserted: median < 0.9 and every seed < 1.
    * the decay helps SGD too: baseline minus last constant-rate iterate +6 (+15), +6,
      +18, +40, +26 examples (min over seeds 0-9: +5). Asserted: better on every seed and
      by half a point in the median.
    """
    assert all(r["decayed"]["status"] == "finished" for r in runs)
    for r in runs:
        s, d = r["swa"], r["decayed"]
        assert abs(s["test_acc"] - d["test_acc"]) < 15 / N_TEST, (s["test_acc"], d["test_acc"])
        assert s["sharpness"] < d["sharpness"], (s["sharpness"], d["sharpness"])
        assert d["test_acc"] > r["sgd"]["test_acc"], (d["test_acc"], r["sgd"]["test_acc"])
    loss = _median(runs, lambda r: r["swa"]["test_loss"] / r["decayed"]["test_loss"])
    assert abs(loss - 1) < 0.1, loss
    assert _median(runs, lambda r: r["swa"]["sharpness"] / r["decayed"]["sharpness"]) < 0.9
    assert _median(runs, lambda r: r["decayed"]["test_acc"] - r["sgd"]["test_acc"]) > 0.005


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
    # the state depends on the CPU (seed 0 bounces less on Intel: "converged"), so the
    # status must name whatever state the stored run's own history gives
    assert result["state"] == run_state(result["history"])
    assert status.startswith(_WORDS[result["state"]]) and "(from the store)" in status
    assert "SGD with decaying η: test acc" in status
    datasets = app.chart.spec["datasets"]
    assert datasets["swa_start"] == [{"step": 400}]
    assert datasets["plane_grid"] and datasets["slices"] and len(datasets["compare"]) == 12
    legend = str(swa_layout().to_dict()["vconcat"][0])  # the training panel names its lines
    assert "'loss on'" in legend and "train (minibatch)" in legend
    assert datasets["notes"] == []
    # a history whose last quarter bounces (losses x0.2 / x1.8 in turn) reads as oscillating
    n = len(result["history"])
    bouncing = [dict(row, loss=row["loss"] * (0.2 if i % 2 else 1.8)) if i >= n // 2 else row
                for i, row in enumerate(result["history"])]
    assert run_state(bouncing) == "oscillating"
    store.save_json(app.KIND, app.key(), dict(result, history=bouncing, state="oscillating"))
    assert app.show_stored()
    assert app.controls.status.value.startswith("SGD bouncing (oscillating) in the basin")


def test_empty_figure_renders_at_a_finite_size():
    """Before a run most datasets are empty; Vega sizes a chart with an untitled colour
    legend and no data at 1.8e308 px, which collapses the page."""
    svg = vlc.vegalite_to_svg(with_datasets(swa_layout(), swa_datasets({}, 10)).to_dict())
    width, height = (float(v) for v in re.search(r'width="([^"]+)" height="([^"]+)"',
                                                 svg).groups())
    assert 100 < width < 3000 and 100 < height < 3000


@pytest.fixture(scope="module")
def default_runs():
    preset = get_preset("15", "default")
    return [experiment(preset.replace(net=preset.net.replace(model_seed=seed)), {})
            for seed in SEEDS]


@pytest.mark.slow
def test_default_preset_numbers_quoted_in_the_text(default_runs):
    """The default preset (η 0.175) over seeds 0-4 (Intel Xeon). Seeds 5-9 agree (accuracy
    vs the last iterate +8..+20 examples), but seed 8's SWA test loss only just beats the
    iterates' (0.054 vs 0.055), so the every-seed test-loss check is a close one there:

    * every run finishes; SGD bounces ("oscillating") on 4 of 5 (seed 1: "converged").
      Asserted: at least 3 of 5.
    * SWA against the last constant-η iterate: test accuracy +15, +13, +18, +14, +14
      examples (of 1497; median +14, a point); test loss ratio 0.86, 0.85, 0.81, 0.82,
      0.75 (median 0.82); sharpness ratio 0.94, 0.92, 0.89, 0.89, 0.89 (median 0.89);
      train loss ratio median 0.53. Against the mean over the iterates: accuracy +11, +5,
      +5, +5, +6 examples; test loss ratio median 0.87; sharpness ratio median 0.92.
      Asserted: better on every seed in all three, median accuracy gain >= 0.5 point vs
      the last iterate, median test loss ratio < 0.92 and sharpness ratio < 0.96 vs both.
    * flat width ratio 1.03, 1.02, 1.04, 1.02, 1.04 (seeds 5-6: 1.03, 1.05), a slim margin.
      Asserted: median > 1.01, no seed below 0.99.
    * the decaying-η baseline: test accuracy 0.969-0.972 (median 0.971), test loss 0.046
      on every seed, sharpness 1.84-1.94 (median 1.90). SWA ties with it: accuracy +7, -5,
      -1, -1, -2 examples, test loss ratio 1.00, 0.98, 0.97, 0.96, 0.99 (median 0.975),
      and is flatter (sharpness ratio 0.87-0.91). Asserted: the baseline's medians (0.971
      within 0.004, 0.046 and 1.9 within 10%), SWA within 15 examples and flatter on every
      seed, median test loss ratio within 10% of 1.
    """
    runs = default_runs
    assert all(r["status"] == "finished" and r["decayed"]["status"] == "finished"
               for r in runs)
    assert sum(r["state"] == "oscillating" for r in runs) >= 3, [r["state"] for r in runs]
    ratio = functools.partial(_median, runs)
    for other in ("iterates", "sgd"):
        for r in runs:
            s, o = r["swa"], r[other]
            assert s["test_acc"] > o["test_acc"], (other, s["test_acc"], o["test_acc"])
            assert s["test_loss"] < o["test_loss"], (other, s["test_loss"], o["test_loss"])
            assert s["sharpness"] < o["sharpness"], (other, s["sharpness"], o["sharpness"])
        assert ratio(lambda r, o=other: r["swa"]["test_loss"] / r[o]["test_loss"]) < 0.92
        assert ratio(lambda r, o=other: r["swa"]["sharpness"] / r[o]["sharpness"]) < 0.96
    assert ratio(lambda r: r["swa"]["test_acc"] - r["sgd"]["test_acc"]) > 0.005
    assert ratio(lambda r: r["slices"]["width_swa"] / r["slices"]["width_sgd"]) > 1.01
    assert all(r["slices"]["width_swa"] > 0.99 * r["slices"]["width_sgd"] for r in runs)
    assert ratio(lambda r: r["decayed"]["test_acc"]) == pytest.approx(0.971, abs=0.004)
    assert ratio(lambda r: r["decayed"]["test_loss"]) == pytest.approx(0.046, rel=0.1)
    assert ratio(lambda r: r["decayed"]["sharpness"]) == pytest.approx(1.9, rel=0.1)
    for r in runs:
        s, d = r["swa"], r["decayed"]
        assert abs(s["test_acc"] - d["test_acc"]) < 15 / N_TEST, (s["test_acc"], d["test_acc"])
        assert s["sharpness"] < d["sharpness"], (s["sharpness"], d["sharpness"])
    assert abs(ratio(lambda r: r["swa"]["test_loss"] / r["decayed"]["test_loss"]) - 1) < 0.1
