"""Batched slices against brute force (one Objective call per point), BN modes, caching."""

import pytest
import torch

from eoslab.core.models import build_model
from eoslab.core.store import RunStore, result_key
from eoslab.curvature.objective import Objective, trainable_params
from eoslab.geometry import directions as D
from eoslab.geometry.landscape import (
    evaluate_points,
    interpolate,
    points_per_batch,
    slice_1d,
    slice_2d,
)


def _setup(device, name="fc-tanh", loss="mse", n=30):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 16, generator=gen, dtype=torch.float64)
    labels = torch.randint(0, 3, (n,), generator=gen)
    y = torch.nn.functional.one_hot(labels, 3).double() if "mse" in loss else labels
    model = build_model(name, (16,), 3, width=6, depth=1, seed=2, dtype="float64",
                        device=device)
    return model, x.to(device), y.to(device)


def _brute(obj, base, dirs, coords, x, y):
    out = []
    for c in coords:
        p = D.combine(base, [float(v) for v in c], dirs)
        out.append(Objective(obj.model, obj.loss, x, y, train_mode=obj.train_mode).metrics(p))
    return out


@pytest.mark.parametrize("loss", ["mse", "ce", "sqrt-mse"])
def test_batched_points_equal_brute_force(device, loss):
    model, x, y = _setup(device, loss=loss)
    obj = Objective(model, loss, x, y, chunk_size=7)
    w = trainable_params(model)
    dirs = [D.random_direction(w, 0), D.random_direction(w, 1)]
    coords = torch.randn(11, 2, generator=torch.Generator().manual_seed(4))
    got = evaluate_points(obj, w, dirs, coords, batch_points=4)
    loop = evaluate_points(obj, w, dirs, coords, method="loop")
    ref = _brute(obj, w, dirs, coords, x, y)
    torch.testing.assert_close(got["loss"], torch.tensor([r["loss"] for r in ref]).double())
    torch.testing.assert_close(got["acc"], torch.tensor([r["acc"] for r in ref]).double())
    torch.testing.assert_close(loop["loss"], got["loss"])


@pytest.mark.parametrize("train_mode", [False, True])
def test_batchnorm_modes(device, train_mode):
    model, x, y = _setup(device, name="cnn-bn")
    with torch.no_grad():  # non-trivial running statistics
        model.train()
        model(x)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    obj = Objective(model, "mse", x, y, train_mode=train_mode)
    w = trainable_params(model)
    d = D.random_direction(w, 0)
    got = slice_1d(obj, w, d, [-0.5, 0.0, 0.5])
    ref = _brute(obj, w, [d], [[-0.5], [0.0], [0.5]], x, y)
    torch.testing.assert_close(torch.tensor(got["loss"]), torch.tensor([r["loss"] for r in ref]))
    for k, v in model.state_dict().items():  # the model (and its BN buffers) is untouched
        assert torch.equal(v, before[k])


def test_slice_2d_layout_and_test_split(device):
    model, x, y = _setup(device)
    obj = Objective(model, "mse", x, y)
    w = trainable_params(model)
    d1, d2 = D.random_direction(w, 0), D.random_direction(w, 1)
    xs, ys = [-1.0, 0.0, 2.0], [0.5, 1.0]
    out = slice_2d(obj, w, d1, d2, xs, ys, test=(x[:10], y[:10]))
    assert len(out["loss"]) == 3 and len(out["loss"][0]) == 2
    assert set(out) == {"x", "y", "loss", "acc", "test_loss", "test_acc"}
    p = D.combine(w, [2.0, 0.5], [d1, d2])
    assert out["loss"][2][0] == pytest.approx(float(obj(p)), rel=1e-10)
    test_obj = Objective(model, "mse", x[:10], y[:10])
    assert out["test_loss"][2][0] == pytest.approx(float(test_obj(p)), rel=1e-10)


def test_interpolation_endpoints():
    model, x, y = _setup("cpu")
    obj = Objective(model, "mse", x, y)
    a = trainable_params(model)
    b = trainable_params(build_model("fc-tanh", (16,), 3, width=6, depth=1, seed=9,
                                     dtype="float64"))
    out = interpolate(obj, a, b, [0.0, 0.5, 1.0])
    assert out["t"] == [0.0, 0.5, 1.0]
    assert out["loss"][0] == pytest.approx(float(obj(a)), rel=1e-12)
    assert out["loss"][2] == pytest.approx(float(obj(b)), rel=1e-12)
    mid = {k: (a[k] + b[k]) / 2 for k in a}
    assert out["loss"][1] == pytest.approx(float(obj(mid)), rel=1e-12)


def test_memory_bound_batch_size():
    model, x, y = _setup("cpu")
    obj = Objective(model, "mse", x, y)
    w = trainable_params(model)
    small = points_per_batch(obj, w, x, memory_mb=0.01)
    large = points_per_batch(obj, w, x, memory_mb=100)
    assert 1 <= small < large


def test_bad_inputs():
    model, x, y = _setup("cpu")
    obj = Objective(model, "mse", x, y)
    w = trainable_params(model)
    d = D.random_direction(w, 0)
    with pytest.raises(ValueError, match="alphas is empty"):
        slice_1d(obj, w, d, [])
    with pytest.raises(ValueError, match="ys is empty"):
        slice_2d(obj, w, d, d, [0.0], [])
    with pytest.raises(ValueError, match="mismatched architectures"):
        slice_1d(obj, w, {k: v[..., :1] for k, v in d.items()}, [0.0])
    with pytest.raises(ValueError, match="method='fast'"):
        evaluate_points(obj, w, [d], [0.0], method="fast")
    with pytest.raises(ValueError, match="coords of shape"):
        evaluate_points(obj, w, [d, d], [[0.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match="batch_points=0"):
        evaluate_points(obj, w, [d], [0.0], batch_points=0)


def test_cached_results_keyed_by_inputs(tmp_path):
    store = RunStore(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"loss": [1.0, 2.0]}

    w = {"a": torch.ones(2)}
    parts = {"model": w, "seed": 0, "grid": [0.0, 1.0]}
    assert store.cached("slices", parts, compute) == {"loss": [1.0, 2.0]}
    assert store.cached("slices", parts, compute) == {"loss": [1.0, 2.0]}
    assert len(calls) == 1
    store.cached("slices", {**parts, "seed": 1}, compute)
    assert len(calls) == 2
    other = {"a": torch.tensor([1.0, 1.0000001])}
    assert result_key(model=w) != result_key(model=other)
    assert result_key(model=torch.nn.Linear(2, 2)) != result_key(model=torch.nn.Linear(2, 2))
