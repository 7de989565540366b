"""Chapter 11's phenomenon on the quick preset (Zhang, Li, Sra, Jadbabaie 2022, arXiv
2110.06256): under SGD at a fixed step size the loss settles while the full gradient does
not go to zero, the weights keep moving, and the distribution of the weights stops changing.
"""

from eoslab.chapters.ch11_invariant_measure.experiment import experiment
from eoslab.chapters.presets import get_preset


def _settings(preset, **changes):
    return {"lr": preset.lr, "batch_size": preset.batch_size,
            "weight_decay": preset.weight_decay, **changes}


def _run(batch_size):
    preset = get_preset("11", "quick")
    result = experiment(preset, _settings(preset, batch_size=batch_size))
    assert result["status"] == "finished"
    return result["summary"]


def test_sgd_settles_in_law_not_in_weights():
    preset = get_preset("11", "quick")
    sgd = _run(preset.batch_size)
    # the loss came down and has settled: the last quarter is within 25% of the third
    assert sgd["loss_late"] < 0.1 * sgd["loss_start"], sgd
    assert 0.75 < sgd["loss_settle"] < 1.1, sgd
    # the full-batch gradient norm levelled off well above zero
    assert sgd["grad_settle"] > 0.8 and sgd["grad_late"] > 0.05 * sgd["grad_start"], sgd
    # the weights keep moving: the path grows much faster than the distance from the start
    assert sgd["path_late"] > 4 * sgd["travel_late"], sgd
    # ... while the distribution of their entries stops changing
    assert sgd["w1_drop"] < 0.15, sgd
    assert sgd["ratio_late"] < 0.6 * sgd["ratio_first"], sgd
    # full-batch GD at the same step size: no noise, so its gradient does head to zero
    gd = _run(preset.net.n_train)
    assert gd["grad_late"] < 0.2 * sgd["grad_late"], (gd, sgd)
    assert gd["grad_settle"] < 0.9, gd


def test_the_largest_step_size_diverges():
    from eoslab.chapters.ch11_invariant_measure.app import InvariantMeasureApp

    preset = get_preset("11", "quick").replace(steps=400)
    app = InvariantMeasureApp(preset, store=False, chart_mode="jupyter", auto_run=False)
    lr = app.sliders["lr"].max  # twice lr_edge
    result = experiment(preset, _settings(preset, lr=lr))
    assert result["status"] == "diverged"
    assert result["diverged"]["stage"] == "SGD" and result["diverged"]["lr"] == lr


def test_lr_edge_is_two_over_the_initial_sharpness_and_sets_the_slider():
    from eoslab.chapters.ch11_invariant_measure.app import InvariantMeasureApp
    from eoslab.curvature.eigen import top_eigen
    from eoslab.curvature.hessian import HessianOperator
    from eoslab.curvature.objective import Objective

    for name in ("quick", "default"):
        preset = get_preset("11", name)
        data, model = preset.net.build()
        objective = Objective(model, preset.net.loss, data.x_train, data.y_train)
        top = float(top_eigen(HessianOperator(objective), 1).values[0])
        edge = 2 / (top + preset.weight_decay)
        # stored to 3 digits: within 1%
        assert abs(preset.lr_edge / edge - 1) < 0.01, (name, preset.lr_edge, edge)
    app = InvariantMeasureApp("quick", store=False, chart_mode="jupyter", auto_run=False)
    lr, (low, high) = app.sliders["lr"], InvariantMeasureApp.LR_SPAN
    edge = app.preset.lr_edge
    # ends rounded to the slider's step, 0.01
    assert abs(lr.min - low * edge) <= 0.01 and abs(lr.max - high * edge) <= 0.01, lr
    assert lr.min < app.preset.lr < edge < lr.max and f"{edge:.2g}" in lr.description
    app.preset_menu.value = "default"
    assert abs(lr.max - high * get_preset("11", "default").lr_edge) <= 0.01, lr


def test_the_app_trains_and_shows_a_stored_run_at_once(tmp_path):
    from eoslab.chapters.ch11_invariant_measure.app import InvariantMeasureApp
    from eoslab.core.store import RunStore

    short = get_preset("11", "quick").replace(steps=200, record_every=20, snapshot_every=100)
    store = RunStore(tmp_path)
    first = InvariantMeasureApp(short, store=store, chart_mode="jupyter", auto_run=False)
    assert "eoslab-batch-slider" in first.sliders["batch_size"]._dom_classes
    assert "eoslab-wd-slider" in first.sliders["weight_decay"]._dom_classes
    first.run(wait=True)
    assert "the loss has settled" in first.controls.status.value and first.datasets["hist"]
    again = InvariantMeasureApp(short, store=store, chart_mode="jupyter", auto_run=False)
    assert "from the store" in again.controls.status.value
    assert again.datasets["history"] == first.datasets["history"] != []
