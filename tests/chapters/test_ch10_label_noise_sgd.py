"""Chapter 10's phenomenon on the quick preset: label-noise SGD drifts along the zero-loss
manifold to the minimiser of tr(Hessian) (Damian, Ma, Lee 2021)."""

from eoslab.chapters.ch10_label_noise_sgd.app import CLEAN, NOISY, label_noise_experiment
from eoslab.chapters.presets import get_preset


def test_label_noise_ends_at_the_flat_minimiser_and_lowers_the_trace_of_a_net():
    preset = get_preset("10", "quick")
    result = label_noise_experiment(preset.values, {"lr": preset["lr"],
                                                    "sigma": preset["sigma"]})
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


def test_the_app_reports_a_divergence_at_its_largest_step_size_and_keeps_working():
    from eoslab.chapters.ch10_label_noise_sgd.app import LabelNoiseApp

    app = LabelNoiseApp("quick", store=False, auto_run=False)
    assert "eoslab-lr-slider" in app.lr._dom_classes
    assert "eoslab-sigma-slider" in app.sliders["sigma"]._dom_classes
    app.lr.value = app.lr.max  # the sharpest toy start cannot stay near uv = 1
    app.run(wait=True)
    assert "diverged" in app.controls.status.value and "f = uv" in app.controls.status.value
    assert app.datasets["net"] == []


def test_a_finished_run_is_stored_and_shown_again_at_once(tmp_path):
    from eoslab.chapters.ch10_label_noise_sgd.app import LabelNoiseApp
    from eoslab.chapters.presets import Preset
    from eoslab.core.store import RunStore

    quick = get_preset("10", "quick")
    short = Preset("10", "quick", dict(quick.values, uv_steps=200, warmup=20, steps=40,
                                       record_every=20, trace_m=6), quick.label)
    store = RunStore(tmp_path)
    first = LabelNoiseApp(short, store=store, auto_run=False)
    first.run(wait=True)
    again = LabelNoiseApp(short, store=store, auto_run=False)
    assert "from the store" in again.controls.status.value
    assert again.datasets["net"] == first.datasets["net"] != []
