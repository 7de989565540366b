"""The playground app, widget level (no browser): runs, thresholds, store, lifecycle."""

import math
import time

import pytest
import torch

from eoslab.core.store import RunStore
from eoslab.curvature.sharpness import threshold
from eoslab.ui.playground import Playground

TINY = {"n_train": 64, "width": 16, "depth": 1, "steps": 30, "sharpness_every": 10}


def _app(tmp_path, **settings):
    app = Playground(store=RunStore(tmp_path), chart_mode="jupyter")
    app.set(**{**TINY, **settings})
    return app


def _curve(app, name):
    return [r for r in app.datasets["edge"] if r["curve"].startswith(name)]


def test_adam_rows_have_the_preconditioned_sharpness_and_adams_threshold(tmp_path):
    app = _app(tmp_path, optimizer="adam", lr=0.002, beta1=0.9)
    app.run(wait=True)
    assert app.controls.status.value.startswith("finished")
    rows = app.current.history
    assert all(r["precond_sharpness"] > 0 for r in rows if r["step"] > 0 and "sharpness" in r)
    pre = _curve(app, "preconditioned sharpness")
    edge = _curve(app, "threshold")
    assert len(pre) >= 3 and len(edge) >= 3
    # Adam's threshold (2 + 2 beta1) / ((1 - beta1) eta) = 38 / 0.002 = 19000, exactly
    assert edge[0]["value"] == pytest.approx(threshold("adam", 0.002, 0.9), rel=1e-12)
    assert edge[0]["value"] == pytest.approx(19000.0, rel=1e-12)


def test_two_step_sizes_are_overlaid_and_a_rerun_comes_from_the_store(tmp_path):
    app = _app(tmp_path, lr=0.05)
    app.run(wait=True)
    app.set(lr=0.1)
    app.run(wait=True)
    labels = {r["run"] for r in app.datasets["history"]}
    assert labels == {"gd lr=0.05", "gd lr=0.1"}
    first = app.runs.entries[0]
    app.set(lr=0.05)
    started = time.perf_counter()
    app.run(wait=True)
    assert "(from the store)" in app.controls.status.value
    assert time.perf_counter() - started < 2.0  # read back, not trained (30 steps take longer)
    assert app.current.from_store and app.current.history == first.history
    app.select([first.key])
    assert {r["run"] for r in app.datasets["history"]} == {"gd lr=0.05"}
    app.view.runs.value = (first.key,)
    app.remove_selected()
    assert [e.config.lr for e in app.runs.entries] == [0.1]


def test_gd_and_heavy_ball_thresholds(tmp_path):
    app = _app(tmp_path, optimizer="momentum", lr=0.05, momentum=0.5, steps=10)
    app.run(wait=True)
    assert _curve(app, "threshold")[0]["value"] == pytest.approx((2 + 2 * 0.5) / 0.05)
    app.set(optimizer="sam", rho=0.05)
    app.run(wait=True)
    rows = [r for r in app.current.history if "sharpness" in r]
    g = rows[0]["grad_norm"]
    edge = _curve(app, "threshold")[-len(rows)]
    expected = g / (2 * 0.05) * (math.sqrt(1 + 8 * 0.05 / (0.05 * g)) - 1)
    assert edge["value"] == pytest.approx(expected, rel=1e-9)
    assert edge["value"] < 2 / 0.05


def test_invalid_settings_say_why_and_run_nothing(tmp_path):
    app = _app(tmp_path, optimizer="label-noise", loss="ce")
    app.run(wait=True)
    assert "invalid settings, nothing runs" in app.controls.status.value
    assert "label-noise" in app.controls.status.value and not app.runs.entries


def test_stop_mid_run(tmp_path):
    app = _app(tmp_path, steps=100000, sharpness_every=0)
    app.run()
    while not app.current.history:
        time.sleep(0.02)
    app.stop()
    assert app.wait(30)
    assert app.current.status == "stopped"
    assert app.controls.status.value.startswith("stopped at step")
    assert app.current.history[-1]["step"] < 100000


def test_pause_holds_the_training_thread_and_resume_continues(tmp_path):
    app = _app(tmp_path, steps=400, sharpness_every=0)
    app.run()
    while not app.current.history:
        time.sleep(0.01)
    app.pause()
    deadline = time.time() + 20
    while "paused" not in app.controls.status.value and time.time() < deadline:
        time.sleep(0.02)
    assert app.controls.status.value.startswith("paused at step")
    held = len(app.current.history)
    time.sleep(0.5)
    assert len(app.current.history) == held  # no row while paused
    app.resume()
    assert app.wait(60)
    assert app.current.status == "finished" and len(app.current.history) > held


def test_divergence_is_reported_and_the_next_run_works(tmp_path):
    app = _app(tmp_path, lr=50.0, steps=20)
    app.run(wait=True)
    status = app.controls.status.value
    assert status.startswith("diverged at step") and "(loss" in status
    app.set(lr=0.05)
    app.run(wait=True)
    assert app.controls.status.value.startswith("finished")


def test_slices_are_finite_and_shaped(tmp_path):
    app = _app(tmp_path, steps=20)
    app.run(wait=True)
    steps = app.current.snapshots.steps()
    assert steps == [0, 10, 20]
    out = app.slice_at(10, wait=True, n=7)
    assert len(out["slice1d"]) == 2 * 7 and len(out["slice2d"]) == 7 * 7
    assert all(math.isfinite(r["loss"]) for r in out["slice1d"] + out["slice2d"])
    middle = [r["loss"] for r in out["slice1d"] if abs(r["alpha"]) < 1e-12]
    loss10 = next(r["loss"] for r in app.current.history if r["step"] == 10)
    assert middle == pytest.approx([loss10, loss10], rel=1e-4)  # the slice passes theta_10


class _Net(torch.nn.Module):
    """A module eoslab did not build, with a BatchNorm layer."""

    def __init__(self):
        super().__init__()
        self.a, self.bn = torch.nn.Linear(3, 8), torch.nn.BatchNorm1d(8)
        self.b = torch.nn.Linear(8, 1)

    def forward(self, x):
        return self.b(torch.tanh(self.bn(self.a(x))))


def test_a_users_module_in_the_same_views():
    torch.manual_seed(0)
    x, y = torch.randn(40, 3), torch.randn(40, 1)
    net = _Net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    app = Playground(model=net, data=(x, y), loss="mse", optimizer=opt, chart_mode="jupyter")
    app.set(steps=20, sharpness_every=5, k=2)
    app.run(wait=True)
    assert app.controls.status.value.startswith("finished")
    first = [r["loss"] for r in app.current.history]
    assert any("eig_2" in r for r in app.current.history)
    assert _curve(app, "preconditioned sharpness") and _curve(app, "threshold")
    app.run(wait=True)  # starts again from the module's first state
    assert [r["loss"] for r in app.current.history] == pytest.approx(first, rel=1e-5)
    assert len(app.runs.entries) == 2 and app.store is False
    with pytest.raises(ValueError, match="optimizer=_Net is not allowed"):
        Playground(model=net, data=(x, y), optimizer=net)


def test_a_finished_run_is_offered_for_export(tmp_path):
    import csv
    import io

    app = _app(tmp_path, optimizer="adam", lr=0.002, steps=10)
    app.run(wait=True)
    assert app.exports.wait(30)
    files = app.exports.files
    assert {"svg", "csv", "json", "py"} <= set(files)
    assert files["svg"][1].lstrip().startswith(b"<svg")
    table = list(csv.DictReader(io.StringIO(files["csv"][1].decode())))
    losses = [float(r["loss"]) for r in table if r.get("dataset") == "rows" and r["loss"]]
    assert losses == pytest.approx([r["loss"] for r in app.current.history], rel=1e-6)
    assert "optimizer='adam'" in files["py"][1].decode()


def test_only_the_chosen_optimisers_hyperparameters_are_shown():
    app = Playground(store=False, chart_mode="jupyter")
    shown = {n for n, w in app.settings.items() if w.layout.display != "none"}
    assert not {"momentum", "beta1", "rho", "sigma", "batch_size"} & shown
    app.set(optimizer="adam")
    shown = {n for n, w in app.settings.items() if w.layout.display != "none"}
    assert {"beta1", "beta2", "lr", "weight_decay"} <= shown
    assert not {"momentum", "rho", "sigma", "batch_size"} & shown
    app.set(optimizer="sam")
    assert app.settings["rho"].layout.display != "none"
    assert app.settings["beta1"].layout.display == "none"
