"""Chapter 11's phenomenon on the quick preset (Zhang, Li, Sra, Jadbabaie 2022): under SGD
at a fixed step size the loss settles while the full gradient does not go to zero, the
weights keep moving, and the distribution of the weights stops changing."""

from eoslab.chapters.ch11_invariant_measure.app import invariant_measure_experiment
from eoslab.chapters.presets import get_preset


def _run(batch_size):
    preset = get_preset("11", "quick")
    settings = {"lr": preset["lr"], "batch_size": batch_size,
                "weight_decay": preset["weight_decay"]}
    result = invariant_measure_experiment(preset.values, settings)
    assert result["status"] == "finished"
    return result["summary"]


def test_sgd_settles_in_law_not_in_weights():
    preset = get_preset("11", "quick")
    sgd = _run(preset["batch_size"])
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
    gd = _run(preset["n_train"])
    assert gd["grad_late"] < 0.2 * sgd["grad_late"], (gd, sgd)
    assert gd["grad_settle"] < 0.9, gd


def test_the_app_reports_a_divergence_at_its_largest_step_size():
    from eoslab.chapters.ch11_invariant_measure.app import InvariantMeasureApp
    from eoslab.chapters.presets import Preset

    quick = get_preset("11", "quick")
    short = Preset("11", "quick", dict(quick.values, steps=400), quick.label)
    app = InvariantMeasureApp(short, store=False, auto_run=False)
    assert "eoslab-lr-slider" in app.lr._dom_classes
    app.lr.value = app.lr.max
    app.run(wait=True)
    assert "diverged" in app.controls.status.value
    app.lr.value = 0.3
    app.run(wait=True)
    assert "the loss fell" in app.controls.status.value and app.datasets["hist"]


def test_a_finished_run_is_stored_and_shown_again_at_once(tmp_path):
    from eoslab.chapters.ch11_invariant_measure.app import InvariantMeasureApp
    from eoslab.chapters.presets import Preset
    from eoslab.core.store import RunStore

    quick = get_preset("11", "quick")
    short = Preset("11", "quick", dict(quick.values, steps=200, record_every=20,
                                       snapshot_every=100), quick.label)
    store = RunStore(tmp_path)
    first = InvariantMeasureApp(short, store=store, auto_run=False)
    first.run(wait=True)
    again = InvariantMeasureApp(short, store=store, auto_run=False)
    assert "from the store" in again.controls.status.value
    assert again.datasets["history"] == first.datasets["history"] != []
