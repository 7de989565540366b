"""Chapter 10's phenomenon on the quick preset: label-noise SGD drifts along the zero-loss
manifold to the minimiser of tr(Hessian) (Damian, Ma, Lee 2021, arXiv 2106.06530).
"""

import dataclasses

from eoslab.chapters.ch10_label_noise_sgd.experiment import CLEAN, NOISY, experiment
from eoslab.chapters.presets import get_preset


def test_label_noise_ends_at_the_flat_minimiser_and_lowers_the_trace_of_a_net():
    preset = get_preset("10", "quick")
    result = experiment(preset, {"lr": preset.lr, "sigma": preset.sigma})
    assert result["status"] == "finished"
    s = result["summary"]
    # f = uv: every start on uv = 1 (tr up to 6.4) ends at |u| = |v|, tr near its minimum 2
    assert s["uv_start_trace"] > 6
    assert s["uv_gap"] < 1e-3, s
    assert s["uv_trace"] < 2.15, s
    # the net: from the same fitted point, label noise lowers tr(H), plain SGD does not
    assert s["trace_noisy"] < 0.7 * s["trace_clean"], s
    assert s["trace_noisy"] < 0.8 * s["trace_start"], s
    # ... while staying near the zero-loss manifold (the clean train loss stays small)
    assert s["loss_noisy"] < 0.15, s
    noisy = [r["trace"] for r in result["net"] if r["run"] == NOISY and r["trace"]]
    clean = [r["trace"] for r in result["net"] if r["run"] == CLEAN and r["trace"]]
    assert noisy[-1] < noisy[1] and clean[-1] > 0.9 * clean[0]


def test_the_largest_step_size_diverges_in_the_toy_and_skips_the_net():
    from eoslab.chapters.ch10_label_noise_sgd.app import LabelNoiseApp

    preset = get_preset("10", "quick")
    lr = LabelNoiseApp.LR_RANGE[1]  # the sharpest toy start cannot stay near uv = 1
    result = experiment(preset, {"lr": lr, "sigma": preset.sigma})
    assert result["status"] == "diverged" and result["diverged"]["stage"] == "f = uv"
    assert result["diverged"]["lr"] == lr
    assert result["datasets"]["net"] == [] and result["datasets"]["uv_path"]


def _short():
    quick = get_preset("10", "quick")
    return quick.replace(uv=dataclasses.replace(quick.uv, steps=200), warmup=20, steps=40,
                         record_every=20, trace_m=6)


def test_the_app_shows_a_divergence_and_a_stored_run_at_once(tmp_path):
    from eoslab.chapters.ch10_label_noise_sgd.app import LabelNoiseApp
    from eoslab.core.store import RunStore

    store = RunStore(tmp_path)
    first = LabelNoiseApp(_short(), store=store, chart_mode="jupyter", auto_run=False)
    assert "eoslab-sigma-slider" in first.sliders["sigma"]._dom_classes
    first.run(wait=True)
    assert "every start ends within" in first.controls.status.value
    again = LabelNoiseApp(_short(), store=store, chart_mode="jupyter", auto_run=False)
    assert "from the store" in again.controls.status.value
    assert again.datasets["net"] == first.datasets["net"] != []
    again.set(lr=again.sliders["lr"].max)  # auto_run=False: the move only clears the chart
    again.run(wait=True)
    assert "f = uv diverged" in again.controls.status.value
