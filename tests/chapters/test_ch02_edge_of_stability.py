"""Chapter 02 (Cohen et al., ICLR 2021, arXiv 2103.00065): full-batch GD's sharpness rises to
2/η and hovers there (with heavy ball: (2+2β)/η), GD follows the gradient flow until it reaches
the edge, through the widget-free experiment; and the app around it."""

import threading
import time

import numpy as np
import pytest

from eoslab.chapters.ch02_edge_of_stability.app import LR_SPAN, EdgeOfStabilityApp, lr_edge
from eoslab.chapters.ch02_edge_of_stability.experiment import (
    edge_band,
    eos_configs,
    experiment,
    initial_sharpness,
    run_state,
)
from eoslab.chapters.ch02_edge_of_stability.meta import (
    PRESETS,
    EdgeOfStabilityPreset,
    chosen_net,
)
from eoslab.chapters.presets import get_preset
from eoslab.core.netspec import NetSpec


def _classes(widget):
    found = set(getattr(widget, "_dom_classes", ()))
    for child in getattr(widget, "children", ()):
        found |= _classes(child)
    return found


def _tiny(lr=0.3, ratios=(1.0, 0.5), steps=40, sharpness_every=0, dataset="digits"):
    return EdgeOfStabilityPreset(
        name="quick", label="quick: tiny test preset",
        net=NetSpec(dataset=dataset, n_train=64, model="fc-tanh", width=16, depth=2, loss="mse"),
        optimizer="gd", momentum=0.0, lr=lr, lr_ratios=ratios, steps=steps, record_every=5,
        sharpness_every=sharpness_every)


def test_eos_configs_follow_the_ratios_largest_first():
    configs = eos_configs(_tiny(lr=0.4, ratios=(0.5, 1.0, 0.25)), momentum=0.5)
    assert [c.lr for c in configs] == [0.4, 0.2, 0.1]
    assert all(c.momentum == 0.5 and c.sharpness_every == 0 for c in configs)


def test_edge_band_reads_the_second_half():
    rows = [{"step": s, "sharpness": v} for s, v in [(0, 1.0), (50, 2.0), (60, 5.0), (100, 4.0)]]
    assert edge_band(rows, lr=0.4) == (0.4, 0.8, 1.0)  # 2/eta = 5; steps >= 50 only
    assert edge_band([{"step": 0}], lr=0.4) is None
    with pytest.raises(ValueError, match="last=0"):
        edge_band(rows, 0.4, last=0)


def test_quick_run_reaches_and_hovers_at_the_edge_and_leaves_the_flow():
    preset = get_preset("02", "quick")
    result = experiment(preset, {"lr": preset.lr, "momentum": preset.momentum}, store=False)
    assert result["status"] == "finished"
    (run,) = result["runs"]
    lr = run["lr"]
    history = result["datasets"]["history"]
    edge = 2 / lr
    sharp = [(r["step"], r["sharpness"]) for r in history if r.get("sharpness") is not None]
    assert sharp[0][1] < 0.95 * edge, "the quick run should start below the edge (margin 5%)"
    band = edge_band(history, lr)
    # Cohen et al.: the sharpness hovers *just above* 2/η: second half within -15%..+35%
    assert band is not None and 0.85 <= band[0] and band[2] <= 1.35, band
    assert run["band"] == list(band) and run["state"] == "at the edge"
    losses = [r["loss"] for r in history]
    assert losses[-1] < 0.5 * losses[0], "the loss still falls over long timescales (by 2x)"
    rises = sum(b > a for a, b in zip(losses, losses[1:]))
    assert rises >= 2, "at the edge the loss should no longer fall monotonically"
    # the real gradient flow (RK45) from the same weights, up to the preset's horizon
    flow = result["datasets"]["flow"]
    assert result["flow_end"] == pytest.approx(min(preset.flow_horizon, lr * preset.steps))
    assert flow[-1]["time"] == pytest.approx(result["flow_end"])
    times = np.array([r["time"] for r in flow])
    flow_loss = np.array([r["loss"] for r in flow])
    cross = result["datasets"]["crossings"][0]["time"]
    gap = [(r["time"], abs(r["loss"] - np.interp(r["time"], times, flow_loss))
            / np.interp(r["time"], times, flow_loss)) for r in history if r["time"] <= times[-1]]
    before = [g for t, g in gap if t < cross]
    after = [g for t, g in gap if t > cross]
    # before its edge GD tracks the flow (relative loss gap <= 3%); after it, it parts (> 10%)
    assert len(before) >= 3 and max(before) <= 0.03, gap
    assert after and max(after) > 0.10, gap


def test_heavy_ball_hovers_at_the_momentum_edge_on_the_quick_network():
    preset = get_preset("02", "quick")
    lr, beta = 0.6, 0.5  # (2+2β)/η = 5 is above λ0 ≈ 3.9, 2/η = 3.3 is below it
    result = experiment(preset, {"lr": lr, "momentum": beta}, store=False)
    assert result["status"] == "finished"
    history = result["datasets"]["history"]
    band = edge_band(history, lr, beta)
    # the late-phase sharpness stays within 15% of (2+2β)/η ...
    assert band is not None and 0.85 <= band[0] and band[2] <= 1.15, band
    # ... which is 1.5x the plain edge 2/η: the plain-GD threshold does not describe it
    assert band[1] * (1 + beta) > 1.3, band


@pytest.mark.parametrize("name", ["quick", "default"])
def test_preset_lr_edge_is_two_over_the_initial_sharpness(name):
    preset = PRESETS[name]
    measured = 2 / initial_sharpness(preset.net)
    assert preset.lr_edge == pytest.approx(measured, rel=0.05)  # margin 5%
    assert lr_edge(preset, momentum=0.5) == pytest.approx(1.5 * preset.lr_edge)


def test_architecture_and_loss_choices_build_cohen_et_al_networks():
    preset = _tiny()
    for arch in ("fc-tanh", "fc-relu", "cnn"):
        for loss in ("mse", "ce"):
            (config,) = eos_configs(preset.replace(lr_ratios=(1.0,)), 0.1, 0.0, arch, loss)
            assert (config.model, config.loss) == (arch, loss)
    cnn = chosen_net(preset, "cnn", "ce")
    assert cnn.width == 16 and initial_sharpness(cnn) > 0  # the CNN runs on 8x8 digits
    with pytest.raises(ValueError, match="arch='vgg'"):
        chosen_net(preset, "vgg")
    with pytest.raises(ValueError, match="loss='hinge'"):
        chosen_net(preset, None, "hinge")


def test_run_states_name_what_the_panels_show():
    base = {"status": "finished", "loss0": 1.0, "sharpness0": 3.0, "steps_done": 10}
    assert run_state({**base, "loss": 0.95, "band": None, "max_ratio": 0.5})[0] == "not training"
    assert run_state({**base, "loss": 0.5, "band": [0.7, 0.8, 0.9], "max_ratio": 0.9}
                     )[0] == "training"
    assert run_state({**base, "loss": 1e-4, "band": [0.1, 0.2, 0.3], "max_ratio": 0.3}
                     )[0] == "converged"
    assert run_state({**base, "status": "diverged", "diverged_at": [7, 1e9]}) == (
        "diverged", "diverged at step 7 (loss 1e+09)")


def test_experiment_streams_every_step_size_and_reuses_stored_runs():
    seen = []
    result = experiment(_tiny(), {"lr": 0.3, "momentum": 0.0},
                        emit=lambda data, done: seen.append((data, done)))
    assert [r["lr"] for r in result["runs"]] == [0.3, 0.15]
    assert {r["lr"] for r in result["datasets"]["history"]} == {0.15, 0.3}
    assert len(result["datasets"]["history"]) == 2 * 9
    assert seen[-1][1] == 80 and seen[-1][0]["history"] == result["datasets"]["history"]
    assert not any(r["from_store"] for r in result["runs"])
    again = experiment(_tiny(), {"lr": 0.3, "momentum": 0.0})  # the default run store
    assert all(r["from_store"] for r in again["runs"])
    assert again["datasets"] == result["datasets"]


def test_every_step_size_diverging_is_a_divergence_in_words():
    result = experiment(_tiny(lr=20.0, ratios=(1.0,)), {"lr": 20.0, "momentum": 0.5},
                        store=False)
    assert result["status"] == "diverged"
    assert result["diverged"]["lr"] == 20.0 and result["diverged"]["momentum"] == 0.5
    app = EdgeOfStabilityApp(_tiny(lr=20.0, ratios=(1.0,)), chart_mode="jupyter", store=False)
    app.set(momentum=0.5)
    assert "(2+2β)/λ₀" in app.lr.description
    app.set(lr=app.lr.max)  # the slider's top: twice the momentum edge step size 3/λ0
    app.run(wait=True)
    status = app.controls.status.value
    lr = app.lr.value
    assert "diverged at step" in status and f"(2+2β)/η = {3 / lr:.3g}" in status


def test_a_set_stop_ends_the_experiment_as_stopped():
    stop = threading.Event()
    stop.set()
    result = experiment(_tiny(), {"lr": 0.3, "momentum": 0.0}, stop=stop, store=False)
    assert result["status"] == "stopped" and len(result["runs"]) == 1


def test_app_trains_then_shows_the_stored_result():
    app = EdgeOfStabilityApp(_tiny(), chart_mode="jupyter", throttle=0.0, auto_run=False)
    assert {"eoslab-app", "eoslab-run", "eoslab-stop", "eoslab-progress", "eoslab-status",
            "eoslab-lr-slider", "eoslab-momentum-slider", "eoslab-preset",
            "eoslab-arch-menu", "eoslab-loss-menu", "eoslab-chart"} <= _classes(app.widget)
    app.run(wait=True)
    shown = app.chart.spec["datasets"]["history"]
    assert {r["lr"] for r in shown} == {0.15, 0.3} and len(shown) == 2 * 9
    assert app.controls.progress.value == app.controls.progress.max == 80
    assert app.controls.status.value.count("<b>η = ") == 2
    assert "from the store" not in app.controls.status.value
    again = EdgeOfStabilityApp(_tiny(), chart_mode="jupyter", auto_run=False)
    assert "(from the store)" in again.controls.status.value  # shown at once on creation
    assert again.datasets["history"] == shown


def test_app_stop_ends_a_background_run():
    app = EdgeOfStabilityApp(_tiny(steps=100000, ratios=(1.0,)), chart_mode="jupyter",
                             store=False, auto_run=False)
    app.run()
    deadline = time.time() + 30
    while not app.datasets["history"] and time.time() < deadline:
        time.sleep(0.05)
    app.stop()
    assert app.wait(30)
    assert "stopped" in app.controls.status.value
    assert app.controls.stop.disabled and app.controls.run.description == "Run"


def test_app_background_errors_reach_the_status_line_and_wait():
    app = EdgeOfStabilityApp(_tiny(dataset="cifar10-1k"), chart_mode="jupyter", store=False,
                             auto_run=False)
    app.run()
    with pytest.raises((ImportError, FileNotFoundError)):
        app.wait(60)
    assert app.controls.status.value.startswith("error: ")
    assert app.controls.stop.disabled


def test_app_momentum_redraws_the_layout_with_the_heavy_ball_edge():
    app = EdgeOfStabilityApp(_tiny(ratios=(1.0,)), chart_mode="jupyter", auto_run=False)
    assert "(2+2β)/η" not in str(app.chart.spec)
    app.momentum.value = 0.5
    assert "(2+2β)/η" in str(app.chart.spec)
    assert app.configs()[0].momentum == 0.5


def test_app_lr_slider_spans_the_edge_of_the_chosen_network():
    preset = get_preset("02", "quick")
    app = EdgeOfStabilityApp(preset, chart_mode="jupyter", auto_run=False, store=False)
    edge = preset.lr_edge
    assert (app.lr.min, app.lr.max) == pytest.approx((LR_SPAN[0] * edge, LR_SPAN[1] * edge),
                                                    rel=5e-3)  # 3 significant digits
    assert app.lr.min < preset.lr < edge < app.lr.max
    assert f"edge 2/λ₀ ≈ {edge:.2g}" in app.lr.description
    app.set(arch="cnn")  # λ0 ≈ 23 with the MSE: the range and the step size follow
    cnn_edge = 2 / initial_sharpness(chosen_net(preset, "cnn", "mse"))
    assert app.lr.max == pytest.approx(LR_SPAN[1] * cnn_edge, rel=5e-3)
    assert app.lr.value == pytest.approx(preset.lr * cnn_edge / edge, rel=0.02)
    assert app.configs()[0].model == "cnn" and "refused" not in app.controls.status.value
