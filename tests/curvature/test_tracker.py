"""eoslab.track on a user's own model and loop, checked against dense float64 Hessians.

The model below is defined here, not built by eoslab, and holds a BatchNorm layer: in
train mode the loss the optimiser descends normalises with the batch's statistics, so the
tracker's Hessian must be that function's, and the running statistics must stay as the
training loop left them.
"""

import json
import math
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import eoslab
from eoslab.curvature.tracker import Tracker, threshold_label, track

DT = torch.float64


class UserNet(nn.Module):
    """6 inputs -> 5 hidden -> BatchNorm -> tanh -> 3 classes (63 parameters)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 5)
        self.bn = nn.BatchNorm1d(5)
        self.fc2 = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.bn(self.fc1(x))))


class UserLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(4, 1, dtype=DT))

    def forward(self, x):
        return x @ self.w


def problem(seed=0):
    torch.manual_seed(seed)
    model = UserNet().to(DT)
    x = torch.randn(16, 6, dtype=DT)
    y = torch.randint(0, 3, (16,))
    return model, x, y


def flat_params(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def dense_hessian(model, loss_fn, x, y):
    """The Hessian of the train-mode (batch-statistics) loss over all parameters, flat."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    buffers = {n: b.detach().clone() for n, b in model.named_buffers()}

    def loss_of(theta):
        params, i = {}, 0
        for name, shape in zip(names, shapes):
            params[name] = theta[i:i + shape.numel()].reshape(shape)
            i += shape.numel()
        copies = {n: b.clone() for n, b in buffers.items()}
        return loss_fn(torch.func.functional_call(model, (params, copies), (x,)), y)

    was = model.training
    model.train(True)
    try:
        return torch.autograd.functional.hessian(loss_of, flat_params(model))
    finally:
        model.train(was)


def snapshot(model):
    return {n: t.detach().clone() for n, t in
            [*model.named_buffers(), *model.named_parameters()]}


def unchanged(model, before):
    now = snapshot(model)
    return now.keys() == before.keys() and all(torch.equal(now[n], before[n]) for n in now)


def train(model, opt, x, y, loss_fn, tracker, steps, check=None):
    """A plain user loop; ``check(row, before)`` runs at each recorded row."""
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        before = snapshot(model)
        row = tracker.step(opt)
        if row is not None and check is not None:
            check(row, before)


def test_sgd_sharpness_matches_the_dense_batchnorm_hessian_and_buffers_stay():
    model, x, y = problem()
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    tracker = eoslab.track(model, loss_fn, x, y, every=5, k=2, tol=1e-10,
                           trace_probes=3 * 63)
    seen = []

    def check(row, before):
        # the tracker changed no parameter, no running statistic, no counter, nor the mode
        assert unchanged(model, before) and model.training
        H = dense_hessian(model, loss_fn, x, y)
        eig = torch.linalg.eigvalsh(H)
        # Lanczos at tol 1e-10 bounds the relative error by 1e-10; 1e-7 leaves round-off room
        assert row["sharpness"] == pytest.approx(float(eig[-1]), rel=1e-7)
        assert row["eig_2"] == pytest.approx(float(eig[-2]), rel=1e-7)
        # Hutch++ with 3P products sketches the whole space: the trace is exact
        assert row["trace"] == pytest.approx(float(torch.trace(H)), rel=1e-9, abs=1e-9)
        with torch.no_grad():
            copy = {n: b.clone() for n, b in model.named_buffers()}
            loss = loss_fn(torch.func.functional_call(
                model, ({n: p for n, p in model.named_parameters()}, copy), (x,)), y)
        assert row["loss"] == pytest.approx(float(loss), rel=1e-12)
        seen.append(row["step"])

    train(model, opt, x, y, loss_fn, tracker, 15, check)
    assert seen == [5, 10, 15]
    assert [r["threshold"] for r in tracker.history] == [pytest.approx(10.0)] * 3
    assert "precond_sharpness" not in tracker.history[0]


def test_default_tolerance_bounds_the_relative_error():
    model, x, y = problem(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    tracker = track(model, "ce", x, y, every=4, trace_probes=None)
    train(model, opt, x, y, nn.CrossEntropyLoss(), tracker, 4)
    top = float(torch.linalg.eigvalsh(dense_hessian(model, F.cross_entropy, x, y))[-1])
    # tol=1e-3 is a guaranteed bound on the relative eigenvalue error (Kahan)
    assert abs(tracker.history[-1]["sharpness"] - top) <= 1e-3 * abs(top)
    assert "trace" not in tracker.history[-1]
    assert tracker.history[-1]["threshold"] == pytest.approx(38.0)


def test_adam_preconditioned_sharpness_matches_dense_dhd():
    model, x, y = problem(2)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.9, 0.99), eps=1e-8)
    tracker = track(model, loss_fn, x, y, every=3, tol=1e-10, trace_probes=None)
    checked = []

    def check(row, before):
        assert unchanged(model, before)
        H = dense_hessian(model, loss_fn, x, y)
        p_diag = []
        for p in model.parameters():
            state = opt.state[p]
            v_hat = state["exp_avg_sq"] / (1 - 0.99 ** float(state["step"]))
            p_diag.append((v_hat.sqrt() + 1e-8).reshape(-1))
        D = torch.cat(p_diag).rsqrt()
        dhd = D[:, None] * H * D[None, :]
        top = float(torch.linalg.eigvalsh((dhd + dhd.T) / 2)[-1])
        # same Lanczos bound as above (1e-10); D amplifies round-off by up to max(D)/min(D)
        assert row["precond_sharpness"] == pytest.approx(top, rel=1e-6)
        assert row["sharpness"] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-7)
        checked.append(row["step"])

    train(model, opt, x, y, loss_fn, tracker, 6, check)
    assert checked == [3, 6]
    assert tracker.history[-1]["threshold"] == pytest.approx(38 / 0.01)
    assert tracker.threshold_name == "38/η" and tracker.adaptive


@pytest.mark.parametrize("make, value, label", [
    (lambda p: torch.optim.SGD(p, lr=0.1), 20.0, "2/η"),
    (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), 38.0, "(2+2β)/η"),
    (lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.5, nesterov=True), 3 / (2 * 0.1),
     "(2+2β)/((1+2β)η)"),
    (lambda p: torch.optim.Adam(p, lr=0.01), 3800.0, "38/η"),
    (lambda p: torch.optim.AdamW(p, lr=0.01, betas=(0.5, 0.999)), 600.0, "6/η"),
    (lambda p: torch.optim.RMSprop(p, lr=0.01), 200.0, "2/η"),
])
def test_threshold_of_each_optimiser(make, value, label):
    model = UserLinear()
    x, y = torch.randn(8, 4, dtype=DT), torch.randn(8, 1, dtype=DT)
    opt = make(model.parameters())
    tracker = track(model, F.mse_loss, x, y, every=1, trace_probes=None)
    train(model, opt, x, y, F.mse_loss, tracker, 1)
    assert tracker.history[0]["threshold"] == pytest.approx(value, rel=1e-12)
    assert threshold_label(opt) == label == tracker.threshold_name
    adaptive = isinstance(opt, (torch.optim.Adam, torch.optim.RMSprop))
    assert ("precond_sharpness" in tracker.history[0]) == adaptive


def test_eval_mode_uses_running_statistics():
    model, x, y = problem(3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    tracker = track(model, "ce", x, y, every=2, tol=1e-10, trace_probes=None)
    train(model, opt, x, y, nn.CrossEntropyLoss(), tracker, 2)
    model.eval()
    row = tracker.record(opt)
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = dict(model.named_buffers())

    def loss_of(flat):
        parts = dict(zip(params, torch.split(flat, [p.numel() for p in params.values()])))
        values = {n: parts[n].reshape(p.shape) for n, p in params.items()}
        return F.cross_entropy(torch.func.functional_call(model, (values, buffers), (x,)), y)

    H = torch.autograd.functional.hessian(loss_of, flat_params(model))
    assert row["sharpness"] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-7)


def test_history_rows_and_json_are_headless():
    model, x, y = problem(4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    tracker = track(model, "ce", x, y, every=3)
    assert tracker.record(opt)["step"] == 0  # a row before training
    train(model, opt, x, y, nn.CrossEntropyLoss(), tracker, 7)
    assert [r["step"] for r in tracker.history] == [0, 3, 6] and tracker.steps == 7
    assert set(tracker.history[-1]) == {"step", "loss", "acc", "lr", "sharpness", "threshold",
                                        "trace", "hvps"}
    assert tracker.rows() == tracker.history and tracker.rows() is not tracker.history
    doc = json.loads(tracker.to_json())
    assert doc["rows"] == tracker.rows() and doc["every"] == 3 and doc["diverged"] is None
    assert doc["optimizer"] == "SGD" and doc["threshold"] == "2/η"
    assert "rows=3" in repr(tracker)
    # with the same seed the trace probes and start vectors are the same: same numbers
    again = track(model, "ce", x, y, every=1)
    assert again.record(opt)["trace"] == tracker.record(opt)["trace"]


def test_importing_and_tracking_loads_no_widget_module():
    code = (
        "import sys, torch, eoslab\n"
        "m = torch.nn.Linear(3, 1).double(); x = torch.randn(5, 3, dtype=torch.float64)\n"
        "t = eoslab.track(m, 'mse', x, torch.zeros(5, 1, dtype=torch.float64), every=1)\n"
        "t.step(torch.optim.SGD(m.parameters(), lr=0.1)); t.to_json()\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] in "
        "('ipywidgets', 'altair', 'IPython') or n.startswith('eoslab.ui')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"OMP_NUM_THREADS": "1", **__import__("os").environ})
    assert out.stdout.strip() == "[]"


def test_divergence_is_recorded_and_stops_curvature():
    model = UserLinear()
    torch.manual_seed(0)
    x, y = torch.randn(8, 4, dtype=DT), torch.randn(8, 1, dtype=DT)
    opt = torch.optim.SGD(model.parameters(), lr=5.0)  # far above 2/lambda_max
    tracker = track(model, "mse", x, y, every=1)
    train(model, opt, x, y, F.mse_loss, tracker, 12)
    step, value = tracker.diverged
    first = tracker.history[0]["loss"]
    assert value > 1e3 * first and step == tracker.history[-1]["step"] < 12
    assert "sharpness" not in tracker.history[-1] and "sharpness" in tracker.history[0]
    assert len(tracker.history) == step and tracker.step(opt) is None
    assert json.loads(tracker.to_json())["diverged"] == [step, value]


def test_a_nan_loss_diverges_without_a_traceback():
    model = UserLinear()
    x, y = torch.randn(8, 4, dtype=DT), torch.randn(8, 1, dtype=DT)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    tracker = track(model, "mse", x, y, every=1)
    train(model, opt, x, y, F.mse_loss, tracker, 1)
    with torch.no_grad():
        model.w[0, 0] = float("nan")
    row = tracker.step(opt)
    assert tracker.diverged[0] == 2 and math.isnan(tracker.diverged[1])
    assert math.isnan(row["loss"]) and tracker.rows()[-1]["loss"] is None
    assert json.loads(tracker.to_json())["diverged"] == [2, None]  # JSON has no NaN


@pytest.mark.parametrize("change, message", [
    ({"model": "net"}, "model must be a torch.nn.Module, got str"),
    ({"loss": 42}, "loss=42 is not allowed; use one of mse"),
    ({"loss": "hinge"}, "unknown loss 'hinge'; allowed: mse"),
    ({"every": 0}, "every=0 is not allowed; use an integer >= 1"),
    ({"every": 2.5}, "every=2.5 is not allowed"),
    ({"k": 0}, "k=0 is not allowed"),
    ({"k": 5}, "k=5 is not allowed; the model has 4 trainable parameters"),
    ({"trace_probes": 2}, "trace_probes=2 is not allowed; use an integer >= 3"),
    ({"tol": 0.0}, "tol=0.0 is not allowed; use a number in \\(0, 1\\)"),
    ({"train_mode": "yes"}, "train_mode='yes' is not allowed"),
    ({"divergence_factor": 1}, "divergence_factor=1 is not allowed"),
    ({"chunk_size": 0}, "chunk_size=0 is not allowed"),
    ({"y": torch.zeros(7, 1, dtype=DT)}, "x has 8 examples but y has 7"),
    ({"x": torch.zeros(8, 4)}, "x has dtype torch.float32 but the model's parameters"),
    ({"x": torch.zeros(8, 3, dtype=DT)}, "x of shape \\(8, 3\\) does not fit the model"),
    ({"x": [[1.0]]}, "x must be a torch.Tensor, got list"),
])
def test_bad_input_names_the_value(change, message):
    args = {"model": UserLinear(), "loss": "mse", "x": torch.zeros(8, 4, dtype=DT),
            "y": torch.zeros(8, 1, dtype=DT), **change}
    with pytest.raises(ValueError, match=message):
        track(args.pop("model"), args.pop("loss"), args.pop("x"), args.pop("y"), **args)


def test_bad_optimizer_and_frozen_model():
    model = UserLinear()
    x, y = torch.zeros(8, 4, dtype=DT), torch.zeros(8, 1, dtype=DT)
    tracker = track(model, "mse", x, y, every=1)
    with pytest.raises(ValueError, match="optimizer must be a torch.optim.Optimizer, got str"):
        tracker.step("sgd")
    other = torch.optim.SGD([nn.Parameter(torch.zeros(1, dtype=DT))], lr=0.1)
    with pytest.raises(ValueError, match="holds none of the model's trainable parameters"):
        tracker.step(other)
    model.w.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        Tracker(model, "mse", x, y)
