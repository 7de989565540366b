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


def test_the_largest_step_size_diverges_in_the_toy_and_the_net_keeps_its_panels():
    from eoslab.chapters.ch10_label_noise_sgd.app import LabelNoiseApp

    preset = _short()
    app = LabelNoiseApp(preset, store=False, chart_mode="svg", auto_run=False)
    lr = app.sliders["lr"].max  # 4 times the edge: no toy start stays near uv = 1
    assert lr == app.slider_range("lr", preset)[1]
    assert abs(lr / (4 * preset.lr_edge) - 1) < 0.005  # 3 significant digits
    result = experiment(preset, {"lr": lr, "sigma": preset.sigma})
    assert result["status"] == "diverged" and result["diverged"]["stage"] == "f = uv"
    assert result["diverged"]["lr"] == lr
    assert result["datasets"]["net"] and result["datasets"]["uv_path"]  # both parts drawn
    assert "f = uv (" in result["datasets"]["uv_note"][0]["note"]  # said in its panels
    text = app.describe_diverged(result)
    assert "diverged at step" in text and "1e+308" not in text and "λ₀" in text


def test_the_edge_is_two_over_the_sharpest_start():
    """lr_edge = 2 / the top eigenvalue of the Hessian of (uv - 1)^2 / 2 at the sharpest
    start (finite differences, within 1e-3); a start nudged off uv = 1 comes back at 0.95
    of it and is pushed away at 1.05 of it: |uv - 1| is multiplied by about |1 - 2r| a
    step (0.9 and 1.1), so after 10 steps it is below half of its start, resp. above 1.5x
    (later, above the edge, the path moves to a flatter point and settles there)."""
    import numpy as np
    import torch

    from eoslab.chapters.ch10_label_noise_sgd.label_noise import product_label_noise

    preset = get_preset("10", "quick")

    def loss(p):
        return 0.5 * (p[0] * p[1] - 1.0) ** 2

    tops = []
    for start in preset.uv.starts:
        p, h = np.array(start), 1e-4
        hess = np.array([[(loss(p + h * (np.eye(2)[i] + np.eye(2)[j]))
                           - loss(p + h * np.eye(2)[i]) - loss(p + h * np.eye(2)[j])
                           + loss(p)) / h**2 for j in range(2)] for i in range(2)])
        tops.append(np.linalg.eigvalsh(hess).max())
    assert abs(2 / max(tops) / preset.lr_edge - 1) < 1e-3  # finite differences: 1e-3
    sharp = max(preset.uv.starts, key=lambda s: s[0] ** 2 + s[1] ** 2)
    nudged = torch.tensor(sharp, dtype=torch.float64) * (1 + 1e-4)
    gaps = {}
    for factor in (0.95, 1.05):
        traj = product_label_noise(nudged, 1.0, factor * preset.lr_edge, 0.0, 10)
        u, v = traj.theta[-1].reshape(-1).tolist()
        gaps[factor] = abs(u * v - 1)
    start_gap = abs(float(nudged.prod()) - 1)
    assert gaps[0.95] < start_gap / 2 and gaps[1.05] > 1.5 * start_gap, (gaps, start_gap)


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
    assert "starts diverged at step" in again.controls.status.value
    assert "eoslab-state-diverged" in again.controls.status._dom_classes
