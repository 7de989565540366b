"""Chapter 13's phenomena on the quick preset.

Lyu, Li, Arora (NeurIPS 2022): GD with weight decay on a scale-invariant net drives the
spherical sharpness ||w||^2 lambda_max down, far below where GD without weight decay
leaves it, while the effective step eta/||w||^2 rises to the edge of stability on the
sphere (spherical sharpness ~ 2/eff. step).  Santurkar et al. (NeurIPS 2018): BatchNorm
smooths the landscape along the GD step (measured at initialisation, where the two nets
have the same weights), and it keeps training at step sizes where the net without it blows
up.
"""

import statistics

import pytest

from eoslab.chapters.ch13_normalization_sharpness.experiment import experiment
from eoslab.chapters.presets import get_preset


@pytest.fixture(scope="module")
def quick():
    preset = get_preset("13", "quick")
    result = experiment(preset, {"lr": preset.lr, "wd": preset.wd})
    assert result["status"] == "finished"
    return preset, result


def test_weight_decay_lowers_the_spherical_sharpness_at_the_spherical_edge(quick):
    preset, result = quick
    s = result["summary"]
    wd, plain_gd = s["bn_wd"], s["bn"]
    assert wd["sph_ratio"] < 0.2, wd  # >= 5x lower than at initialisation
    assert wd["sph_end"] < 0.35 * plain_gd["sph_end"], (wd, plain_gd)
    # in the second half, eta/||w||^2 * spherical sharpness = eta * lambda_max sits near 2
    rows = [r for r in result["runs"]["bn_wd"]["history"]
            if r.get("spherical_sharpness") is not None and r["step"] >= preset.steps // 2]
    edge = statistics.median(r["eff_lr"] * r["spherical_sharpness"] for r in rows)
    assert 1.5 < edge < 5.0, edge
    # the effective step grew: weight decay shrank ||w||
    first = result["runs"]["bn_wd"]["history"][0]
    assert rows[-1]["eff_lr"] > 5 * first["eff_lr"]


def test_batchnorm_is_smoother_along_the_step_at_initialisation(quick):
    _, result = quick
    s = result["summary"]
    assert s["grad_predictiveness_init_ratio"] > 3, s
    assert s["loss_variation_init_ratio"] > 3, s
    assert s["beta_smoothness_init_ratio"] > 1.1, s
    # later both runs sit at the edge of stability: beta-smoothness pinned near 2/eta
    edge = 2 / result["lr"]
    for key in ("beta_smoothness_bn", "beta_smoothness_plain"):
        assert 0.6 * edge < s[key] < 1.6 * edge, (key, s[key], edge)


def test_without_batchnorm_a_large_step_blows_up_while_the_batchnorm_nets_train():
    from eoslab.chapters.ch13_normalization_sharpness.app import NormalizationSharpnessApp

    preset = get_preset("13", "quick").replace(steps=60, sharpness_every=30, smooth_every=30)
    lr = NormalizationSharpnessApp.LR_RANGE[1]
    result = experiment(preset, {"lr": lr, "wd": preset.wd})
    assert result["status"] == "diverged"
    assert result["diverged"]["stage"] == "no BatchNorm"
    runs = result["runs"]
    assert runs["plain"]["status"] == "diverged"
    for name in ("bn_wd", "bn"):
        history = runs[name]["history"]
        assert runs[name]["status"] == "finished"
        assert history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_the_app_names_the_runs_that_survived_a_blow_up():
    from eoslab.chapters.ch13_normalization_sharpness.app import NormalizationSharpnessApp

    short = get_preset("13", "quick").replace(steps=20, sharpness_every=1000,
                                              smooth_every=1000)
    app = NormalizationSharpnessApp(short, store=False, chart_mode="jupyter", auto_run=False)
    assert "eoslab-wd-slider" in app.sliders["wd"]._dom_classes
    app.set(lr=app.sliders["lr"].max)
    app.run(wait=True)
    status = app.controls.status.value
    assert "no BatchNorm diverged" in status and "these trained: BatchNorm" in status, status
