"""Bezier / polychain curves, curve training on digits, BN recalibration along a curve."""

import pytest
import torch

import eoslab
from eoslab.core.models import build_model
from eoslab.curvature.objective import Objective, trainable_params
from eoslab.geometry.curves import (
    Curve,
    barrier,
    bezier_coefficients,
    evaluate_curve,
    polychain_coefficients,
    train_curve,
)
from eoslab.geometry.landscape import interpolate


@pytest.fixture
def one_thread():
    """Small nets: intra-op threads only add contention."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_bezier_midpoint_and_coefficients_sum_to_one():
    w1, w2, w3 = ({"w": torch.tensor([v, 2 * v], dtype=torch.float64)} for v in (1.0, 3.0, 7.0))
    curve = Curve(w1, w3, n_bends=1, kind="bezier").double()
    with torch.no_grad():
        curve.bends.copy_(w2["w"][None])
    mid = curve.point(0.5)["w"].detach()
    torch.testing.assert_close(mid, w1["w"] / 4 + w2["w"] / 2 + w3["w"] / 4)
    ts = torch.linspace(0, 1, 37)
    for n_points in (2, 3, 5):
        for fn in (bezier_coefficients, polychain_coefficients):
            coef = fn(ts, n_points)
            torch.testing.assert_close(coef.sum(dim=1), torch.ones(37, dtype=torch.float64))
            assert (coef >= 0).all()
            torch.testing.assert_close(coef[0], torch.eye(n_points, dtype=torch.float64)[0])
            torch.testing.assert_close(coef[-1], torch.eye(n_points, dtype=torch.float64)[-1])


def test_initial_curve_is_the_straight_segment():
    a = {"w": torch.tensor([0.0, 1.0], dtype=torch.float64)}
    b = {"w": torch.tensor([4.0, -3.0], dtype=torch.float64)}
    for kind in ("bezier", "polychain"):
        curve = Curve(a, b, n_bends=3, kind=kind)
        for t in (0.0, 0.13, 0.5, 0.9, 1.0):
            torch.testing.assert_close(curve.point(t)["w"].detach(), a["w"] + t * (b["w"] - a["w"]))
    chain = Curve(a, b, n_bends=1, kind="polychain")
    with torch.no_grad():
        chain.bends.fill_(10.0)
    torch.testing.assert_close(chain.point(0.25)["w"].detach(),
                               torch.tensor([5.0, 5.5], dtype=torch.float64))


def test_evaluate_curve_matches_brute_force(device):
    model = build_model("fc-tanh", (4,), 2, width=5, depth=1, seed=0, dtype="float64",
                        device=device)
    other = build_model("fc-tanh", (4,), 2, width=5, depth=1, seed=1, dtype="float64",
                        device=device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, 4, generator=gen, dtype=torch.float64).to(device)
    y = torch.randn(20, 2, generator=gen, dtype=torch.float64).to(device)
    obj = Objective(model, "mse", x, y)
    curve = Curve(trainable_params(model), trainable_params(other), n_bends=2)
    with torch.no_grad():
        curve.bends.add_(0.3 * torch.randn(curve.bends.shape, generator=gen,
                                           dtype=torch.float64).to(device))
    ts = [0.0, 0.3, 0.8, 1.0]
    out = evaluate_curve(curve, obj, ts, test=(x[:5], y[:5]))
    for i, t in enumerate(ts):
        p = {k: v.detach() for k, v in curve.point(t).items()}
        assert out["loss"][i] == pytest.approx(float(obj(p)), rel=1e-10)
        assert out["test_loss"][i] == pytest.approx(
            float(Objective(model, "mse", x[:5], y[:5])(p)), rel=1e-10)


def test_bn_recalibrated_at_each_point():
    model = build_model("cnn-bn", (16,), 2, width=3, depth=1, seed=0, dtype="float64")
    other = build_model("cnn-bn", (16,), 2, width=3, depth=1, seed=1, dtype="float64")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(24, 16, generator=gen, dtype=torch.float64)
    y = torch.randn(24, 2, generator=gen, dtype=torch.float64)
    obj = Objective(model, "mse", x, y)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    curve = Curve(trainable_params(model), trainable_params(other), n_bends=1)
    out = evaluate_curve(curve, obj, [0.5])
    # brute force: weights at t, running statistics = the full-batch statistics there
    p = {k: v.detach() for k, v in curve.point(0.5).items()}
    import copy
    net = copy.deepcopy(model)
    net.load_state_dict({**net.state_dict(), **p})
    bn = net[2]
    with torch.no_grad():
        h = net[1](net[0](x))
        bn.running_mean.copy_(h.mean(dim=(0, 2, 3)))
        bn.running_var.copy_(h.var(dim=(0, 2, 3), unbiased=True))
        net.eval()
        ref = float(eoslab.get_loss("mse")(net(x), y))
    assert out["loss"][0] == pytest.approx(ref, rel=1e-8)
    stale = float(obj(p))  # with the model's own (untrained) running statistics
    assert abs(stale - ref) > 1e-3
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def _trained(seed, width=32, n_train=200):
    cfg = eoslab.TrainConfig(width=width, n_train=n_train, steps=300, lr=0.1, model_seed=seed,
                             record_every=300, device="cpu")
    run = eoslab.run(cfg, store=False)
    assert run.status == "finished"
    return run.model


def test_trained_bezier_removes_the_barrier_on_digits(one_thread):
    """Garipov et al.: the straight segment between two independently trained nets has
    a barrier; a trained one-bend Bezier curve between them has (almost) none."""
    a, b = _trained(0), _trained(1)
    data = eoslab.load_dataset("digits", n_train=200, device="cpu")
    obj = Objective(a, "mse", data.x_train, data.y_train)
    wa, wb = trainable_params(a), trainable_params(b)
    ts = torch.linspace(0, 1, 21)
    line = interpolate(obj, wa, wb, ts)
    curve = Curve(wa, wb, n_bends=1)
    rows = train_curve(curve, obj, steps=300, lr=0.05, seed=0, record_every=100)
    assert len(rows) == 4
    along = evaluate_curve(curve, obj, ts, test=(data.x_test, data.y_test))
    line_barrier, curve_barrier = barrier(line["loss"]), barrier(along["loss"])
    ends = max(line["loss"][0], line["loss"][-1])
    assert along["loss"][0] == pytest.approx(line["loss"][0], rel=1e-5)
    assert line_barrier > ends  # a real barrier: the midpoint is much worse than the ends
    assert curve_barrier < 0.2 * line_barrier
    assert max(along["loss"]) - ends < 0.2 * (max(line["loss"]) - ends)
    assert min(along["acc"]) > 0.9 and "test_acc" in along


def test_barrier_and_bad_inputs():
    assert barrier([0.0, 1.0, 0.0]) == 1.0
    assert barrier([1.0, 0.5, 0.0]) == 0.0
    a = {"w": torch.zeros(2)}
    with pytest.raises(ValueError, match="kind='spline'"):
        Curve(a, a, kind="spline")
    with pytest.raises(ValueError, match="n_bends=0"):
        Curve(a, a, n_bends=0)
    with pytest.raises(ValueError, match="mismatched architectures"):
        Curve(a, {"w": torch.zeros(3)})
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        bezier_coefficients([1.5], 3)
    with pytest.raises(ValueError, match="t is empty"):
        polychain_coefficients([], 3)
    with pytest.raises(ValueError, match="losses is empty"):
        barrier([])
    model = torch.nn.Linear(2, 1)
    obj = Objective(model, "mse", torch.zeros(3, 2), torch.zeros(3, 1))
    curve = Curve(trainable_params(model), trainable_params(model))
    with pytest.raises(ValueError, match="steps=0"):
        train_curve(curve, obj, steps=0)
    with pytest.raises(ValueError, match="batch_size=9"):
        train_curve(curve, obj, steps=1, batch_size=9)
