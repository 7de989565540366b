"""Directions: filter normalisation (Li et al. 2018), seeding, Gram-Schmidt, bad inputs."""

import pytest
import torch

from eoslab.core.models import build_model
from eoslab.curvature.objective import Objective, trainable_params
from eoslab.geometry import directions as D
from eoslab.geometry.landscape import slice_1d, slice_2d


def _relu_net(device, bias):
    model = build_model("fc-relu", (5,), 3, width=7, depth=2, seed=1, bias=bias,
                        dtype="float64", device=device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 5, generator=gen, dtype=torch.float64).to(device)
    y = torch.randn(40, 3, generator=gen, dtype=torch.float64).to(device)
    return model, x, y


def _rescale(params, c):
    """Layer 1 (weight and bias) times c, layer 2's weight over c: the same ReLU function."""
    out = dict(params)
    out["1.weight"] = params["1.weight"] * c
    if "1.bias" in params:
        out["1.bias"] = params["1.bias"] * c
    out["3.weight"] = params["3.weight"] / c
    return out


def test_filter_norms_equal_weight_norms(device):
    model, _, _ = _relu_net(device, bias=True)
    w = trainable_params(model)
    d = D.filter_normalize(D.random_direction(w, seed=3), w)
    for k, v in w.items():
        if v.dim() >= 2:
            torch.testing.assert_close(d[k].norm(dim=1), v.norm(dim=1))
        else:
            assert torch.count_nonzero(d[k]) == 0  # biases zeroed by default
    copy = D.filter_normalize(D.random_direction(w, seed=3), w, bias="copy")
    torch.testing.assert_close(copy["1.bias"], w["1.bias"])
    whole = D.filter_normalize(D.random_direction(w, seed=3), w, bias="filter")
    torch.testing.assert_close(whole["1.bias"].norm(), w["1.bias"].norm())


@pytest.mark.parametrize("bias", [False, True])
def test_filter_normalised_slice_invariant_to_relu_rescaling(device, bias):
    model, x, y = _relu_net(device, bias)
    obj = Objective(model, "mse", x, y)
    w = trainable_params(model)
    w_scaled = _rescale(w, 7.5)
    torch.testing.assert_close(obj(w_scaled), obj(w))  # same function
    grid = torch.linspace(-1.0, 1.0, 9)
    slices = []
    for params in (w, w_scaled):
        d1 = D.filter_normalize(D.random_direction(params, seed=0), params)
        d2 = D.filter_normalize(D.random_direction(params, seed=1), params)
        slices.append(torch.tensor(slice_2d(obj, params, d1, d2, grid, grid)["loss"]))
    torch.testing.assert_close(slices[0], slices[1], rtol=1e-9, atol=1e-12)
    # without normalisation the slice does change (the check above can fail)
    raw = [torch.tensor(slice_1d(obj, p, D.random_direction(p, seed=0), grid)["loss"])
           for p in (w, w_scaled)]
    assert (raw[0] - raw[1]).abs().max() > 1e-3


def test_layer_normalise_and_random_seeding():
    w = {"a": torch.randn(3, 4, dtype=torch.float64), "b": torch.randn(4, dtype=torch.float64)}
    d = D.layer_normalize(D.random_direction(w, seed=5), w)
    for k, v in w.items():
        torch.testing.assert_close(d[k].norm(), v.norm())
    assert torch.equal(D.random_direction(w, 5)["a"], D.random_direction(w, 5)["a"])
    assert not torch.equal(D.random_direction(w, 5)["a"], D.random_direction(w, 6)["a"])
    big = D.random_direction({"z": torch.zeros(20000)}, seed=0)["z"]
    assert abs(float(big.mean())) < 0.05 and abs(float(big.std()) - 1) < 0.05


def test_difference_gradient_and_vector_ops():
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.5])}
    b = {"w": torch.tensor([4.0, 6.0]), "b": torch.tensor([0.5])}
    diff = D.difference(a, b)
    assert diff["w"].tolist() == [3.0, 4.0] and float(D.norm(diff)) == 5.0
    torch.testing.assert_close(D.unflatten(D.flatten(a), a)["w"], a["w"])
    both = D.combine(a, [2.0], [diff])
    assert both["w"].tolist() == [7.0, 10.0]
    model = torch.nn.Linear(2, 1, bias=False).double()
    x = torch.randn(10, 2, dtype=torch.float64)
    obj = Objective(model, "mse", x, torch.zeros(10, 1, dtype=torch.float64))
    g = D.gradient_direction(obj, unit=False)
    w = model.weight.detach()
    torch.testing.assert_close(g["weight"], (x @ w.T).T @ x / 10)  # d/dw mean(0.5 (xw)^2)
    torch.testing.assert_close(D.norm(D.gradient_direction(obj)), torch.tensor(1.0).double())


def test_orthonormalize_and_hessian_directions_given():
    a = {"w": torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)}
    b = {"w": torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)}
    u, v = D.orthonormalize([a, b])
    assert abs(float(D.dot(u, v))) < 1e-12 and abs(float(D.norm(v)) - 1) < 1e-12
    with pytest.raises(ValueError, match="linearly dependent"):
        D.orthonormalize([a, D.scale(a, 2.0)])
    model = torch.nn.Linear(3, 1, bias=False).double()
    obj = Objective(model, "mse", torch.ones(2, 3).double(), torch.zeros(2, 1).double())
    vecs = D.hessian_directions(obj, k=1, eigenvectors=[torch.tensor([0.0, 3.0, 4.0])])
    torch.testing.assert_close(vecs[0]["weight"], torch.tensor([[0.0, 0.6, 0.8]]).double())


def test_hessian_directions_from_the_eigen_solver():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=gen, dtype=torch.float64) * torch.tensor(
        [3.0, 1.0, 0.5, 0.2], dtype=torch.float64)
    model = torch.nn.Linear(4, 1, bias=False).double()
    obj = Objective(model, "mse", x, torch.zeros(30, 1, dtype=torch.float64))
    _, vecs = torch.linalg.eigh(x.T @ x / 30)  # the exact Hessian of this MSE
    got = D.hessian_directions(obj, k=2, tol=1e-10)
    for i, d in enumerate(got):
        exact = vecs[:, -1 - i]
        assert abs(float(d["weight"].reshape(-1) @ exact)) == pytest.approx(1.0, abs=1e-8)


def test_bad_inputs_name_the_problem():
    w = {"a": torch.ones(2, 2)}
    with pytest.raises(ValueError, match="bias='nope'"):
        D.filter_normalize(w, w, bias="nope")
    with pytest.raises(ValueError, match="mismatched architectures"):
        D.filter_normalize({"a": torch.ones(3, 2)}, w)
    with pytest.raises(ValueError, match="extra parameters"):
        D.difference(w, {"b": torch.ones(2, 2)})
    with pytest.raises(ValueError, match="zero"):
        D.normalize({"a": torch.zeros(2)})
