"""Chapter 05's phenomenon on the quick preset: normalised GD and GD on sqrt(L) reach the edge
of their effective step size and then *lower* the sharpness (Arora, Li, Panigrahi 2022)."""

import pytest

from eoslab.chapters.ch05_normalized_gd.app import NormalizedGDApp, run_state
from eoslab.chapters.ch05_normalized_gd.experiment import experiment
from eoslab.chapters.presets import get_preset
from eoslab.curvature.eigen import top_eigen
from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.objective import Objective


@pytest.fixture(scope="module")
def quick_result():
    preset = get_preset("05", "quick")
    return preset, experiment(preset, {"lr": preset.lr, "sqrt_lr": preset.sqrt_lr})


@pytest.mark.parametrize("method", ["ngd", "sqrt"])
def test_each_method_sits_at_its_effective_edge_and_the_sharpness_falls(quick_result, method):
    preset, result = quick_result
    assert result["status"] == "finished"
    assert set(result["runs"]) == {"ngd", "sqrt"}  # both halves of the chapter run on quick
    run = result["runs"][method]
    summary = run["summary"]
    # the peak is reached well before the end (margin: in the first 60% of the run) ...
    assert summary["peak_step"] <= 0.6 * preset.steps, summary
    # ... then the sharpness goes down by 10% at least (measured: NGD 0.83x, sqrt 0.41x)
    assert summary["ratio"] < 0.9, summary
    # ... while the effective step size keeps it at the edge: eta_eff * S / 2 within
    # [0.9, 1.25] of 1 (measured: NGD 1.05, sqrt 1.13)
    assert 0.9 <= summary["edge_median"] <= 1.25, summary
    # and the loss L fell tenfold at least
    losses = [r["loss"] for r in run["history"] if r.get("loss") is not None]
    if method == "sqrt":
        losses = [v * v for v in losses]  # the run's own loss is sqrt(L)
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])
    assert run_state(run) == "at the edge, sharpness falling"


def test_lr_edges_are_the_effective_thresholds_at_the_initialisation():
    # NGD: eta_eff = eta / |grad L0| so its edge is 2 |grad L0| / lambda_0; GD on sqrt(L):
    # eta_eff = eta / (2 sqrt(L0)) so its edge is 4 sqrt(L0) / lambda_0 (margin 1%)
    for name in ("quick", "default"):
        preset = get_preset("05", name)
        data, model = preset.net.build()
        objective = Objective(model, preset.net.loss, data.x_train, data.y_train)
        op = HessianOperator(objective)
        lam = float(top_eigen(op, tol=1e-8).values[0])
        ngd = 2 * float(op.gradient().norm()) / lam
        sqrt = 4 * float(objective(objective.params())) ** 0.5 / lam
        assert abs(preset.lr_edge - ngd) < 0.01 * ngd, (name, preset.lr_edge, ngd)
        assert abs(preset.sqrt_lr_edge - sqrt) < 0.01 * sqrt, (name, preset.sqrt_lr_edge, sqrt)
    app = NormalizedGDApp("quick", store=False, chart_mode="jupyter", auto_run=False)
    lr, sq = app.sliders["lr"], app.sliders["sqrt_lr"]
    # each slider spans 0.02x to 4x its edge, and names it
    assert (lr.min, lr.max) == (0.0153, 3.06)  # 0.02x and 4x the edge, 3 digits
    assert (sq.min, sq.max) == (0.0262, 5.24)
    assert "edge 0.77" in lr.description and "edge 1.3" in sq.description


def test_a_step_too_long_to_train_says_not_training_and_the_other_run_keeps_its_data():
    preset = get_preset("05", "quick").replace(steps=100)
    app = NormalizedGDApp(preset, store=False, chart_mode="jupyter", auto_run=False)
    result = experiment(preset, {"lr": app.sliders["lr"].max, "sqrt_lr": preset.sqrt_lr})
    text = app.describe(result) if result["status"] == "finished" else \
        app.describe_diverged(result)
    ngd = result["runs"]["ngd"]
    assert ngd["status"] == "diverged" or run_state(ngd) == "not training", text
    assert "not training" in text or "diverged at step" in text, text
    assert result["runs"]["sqrt"]["history"], "GD on sqrt(L) still trains"
