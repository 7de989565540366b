"""The first affine layer evaluated once per direction: the identity, when it applies, and
that evaluate_points gives the per-point answer with it."""

import pytest
import torch
from torch import nn

from eoslab.core.models import build_model
from eoslab.curvature.objective import Objective, trainable_params
from eoslab.geometry import directions as D
from eoslab.geometry.landscape import evaluate_points
from eoslab.speed.linear_head import split_linear_head


def _data(n=12, shape=(1, 6, 6)):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, *shape, generator=gen, dtype=torch.float64)
    y = nn.functional.one_hot(torch.randint(0, 3, (n,), generator=gen), 3).double()
    return x, y


@pytest.mark.parametrize("name", ["fc-tanh", "cnn", "linear"])
def test_head_of_a_point_is_the_combination_of_responses(name):
    x, y = _data()
    model = build_model(name, (1, 6, 6), 3, width=5, seed=1, dtype="float64")
    obj = Objective(model, "mse", x, y)
    split = split_linear_head(obj)
    assert split is not None
    w = trainable_params(model)
    dirs = [D.random_direction(w, 0), D.random_direction(w, 1)]
    coords = torch.tensor([[0.0, 0.0], [1.5, -0.25], [-2.0, 3.0]], dtype=torch.float64)
    got = split.combine(split.responses(w, dirs, x), coords)
    for c, z in zip(coords, got):
        point = D.combine(w, [float(v) for v in c], dirs)
        want = torch.func.functional_call(split.head, {n: point[n] for n in split.head_names},
                                          (x,))
        torch.testing.assert_close(z, want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(obj.forward(point, z, split.tail), obj.forward(point, x),
                                   rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,chunk", [("fc-tanh", None), ("cnn", None), ("cnn", 5)])
def test_evaluate_points_with_the_split_equals_the_loop(name, chunk):
    x, y = _data()
    model = build_model(name, (1, 6, 6), 3, width=5, seed=1, dtype="float64")
    obj = Objective(model, "mse", x, y, chunk_size=chunk)
    assert split_linear_head(obj) is not None
    w = trainable_params(model)
    dirs = [D.filter_normalize(D.random_direction(w, 0), w), D.random_direction(w, 1)]
    coords = torch.randn(7, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    got = evaluate_points(obj, w, dirs, coords, batch_points=4)  # > K + 1: split when chunked
    ref = evaluate_points(obj, w, dirs, coords, method="loop")
    torch.testing.assert_close(got["loss"], ref["loss"], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(got["acc"], ref["acc"])


def test_no_split_where_the_identity_does_not_apply():
    x, y = _data(shape=(36,))

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(36, 4), nn.Tanh(), nn.Linear(4, 3))

        def forward(self, v):
            return self.net(v)

    bn_first = nn.Sequential(nn.BatchNorm1d(36), nn.Linear(36, 3)).double().eval()
    fc = nn.Sequential(nn.Linear(36, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    assert split_linear_head(Objective(Wrapped().double(), "mse", x, y)) is None
    assert split_linear_head(Objective(bn_first, "mse", x, y)) is None
    assert split_linear_head(Objective(fc, "mse", x, y, names=("2.weight", "2.bias"))) is None
    assert split_linear_head(Objective(fc, "mse", x, y, train_mode=True)) is None
    assert split_linear_head(Objective(fc, "mse", x, y)).head_names == ("0.weight", "0.bias")
