"""Chapter 04's phenomenon on the quick preset: GD keeps converging with eta * lambda_max > 2,
making less progress per step than the descent lemma's, its gradient aligned with u_1
(Ahn, Zhang, Sra 2022)."""

from eoslab.chapters.ch04_unstable_convergence.app import UnstableConvergenceApp
from eoslab.chapters.ch04_unstable_convergence.experiment import experiment
from eoslab.chapters.presets import get_preset
from eoslab.curvature.eigen import top_eigen
from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.objective import Objective


def test_loss_converges_while_eta_lambda_max_exceeds_two():
    preset = get_preset("04", "quick")
    result = experiment(preset, {"lr": preset.lr})
    assert result["status"] == "finished"
    s = result["summary"]
    assert s is not None, "the quick run should cross eta * lambda_max = 2"
    assert s["entry_step"] <= 0.5 * preset.steps
    # unstable: after entry, eta * lambda_max is above 2 at a good share of the probes ...
    assert s["above_fraction"] >= 0.3 and s["eta_sharpness_median"] >= 1.9, s
    # ... yet the loss keeps converging
    assert s["loss_end"] < 0.7 * s["loss_entry"], s
    # the stable part makes descent-lemma progress (RP near -1), the unstable part much less
    assert s["rp_stable"] < -0.6 and s["rp_unstable"] > s["rp_stable"] + 0.3, s
    # the paper's figure: in the unstable part RP hovers near 0 (margin: its median within
    # 0.25 of 0, a quarter of the way from 0 to the descent lemma's -1; measured about -0.01)
    assert abs(s["rp_unstable"]) < 0.25, s
    # and the gradient leans towards the top eigenvector once unstable
    assert s["alignment_unstable"] > 2 * s["alignment_stable"], s
    app = UnstableConvergenceApp("quick", store=False, chart_mode="jupyter", auto_run=False)
    assert "converging although η λ_max &gt; 2" in app.describe(result)


def test_lr_edge_is_two_over_the_initial_sharpness_and_scales_the_slider():
    # lr_edge = 2 / lambda_max at the initialisation, recomputed by Lanczos (margin 1%)
    for name in ("quick", "default"):
        preset = get_preset("04", name)
        data, model = preset.net.build()
        op = HessianOperator(Objective(model, preset.net.loss, data.x_train, data.y_train))
        edge = 2 / float(top_eigen(op, tol=1e-8).values[0])
        assert abs(preset.lr_edge - edge) < 0.01 * edge, (name, preset.lr_edge, edge)
    app = UnstableConvergenceApp("quick", store=False, chart_mode="jupyter", auto_run=False)
    lr = app.sliders["lr"]
    # the slider spans 0.1x to 3x the edge; its label names the edge
    assert (lr.min, lr.max) == (0.0808, 2.42)  # 0.1x and 3x the edge, 3 digits
    assert "2/λ₀ = 0.81" in lr.description
    app.preset_menu.value = "default"
    assert (lr.min, lr.max) == (0.0725, 2.17)
    assert "2/λ₀ = 0.72" in lr.description
