"""Objective and HessianOperator check shapes, dtypes and values up front (issue 15).

Every bad input raises ValueError naming the tensor, never TypeError, KeyError or a torch
RuntimeError from deep inside a forward pass.
"""

import pytest
import torch

from eoslab.core.data import load_dataset
from eoslab.core.models import build_model
from eoslab.curvature.hessian import HessianOperator, hvp
from eoslab.curvature.objective import Objective


@pytest.fixture(scope="module")
def problem():
    data = load_dataset("moons", n_train=16, device="cpu", dtype="float64")
    model = build_model("fc-tanh", data.input_shape, data.n_outputs, width=4, depth=1,
                        device="cpu", dtype="float64")
    return data, model


def _with(t, index, value):
    t = t.clone()
    t.view(-1)[index] = value
    return t


@pytest.mark.parametrize("change,match", [
    (lambda d: {"x": torch.randn(16, 3, dtype=torch.float64)},
     r"x of shape \(16, 3\) does not fit the model"),
    (lambda d: {"x": d.x_train.float()}, r"x has dtype torch.float32 but the model's parameters "
                                         r"are torch.float64"),
    (lambda d: {"x": _with(d.x_train, 0, float("nan"))}, r"x holds 1 NaN or infinite values"),
    (lambda d: {"y": _with(d.y_train, 3, float("inf"))}, r"y holds 1 NaN or infinite values"),
    (lambda d: {"y": d.y_train[:, :1]}, r"y of shape \(16, 1\) does not fit the model's outputs"),
    (lambda d: {"y": d.y_train.float()}, r"y has dtype torch.float32"),
    (lambda d: {"y": d.y_train[:5]}, r"x has 16 examples but y has 5"),
    (lambda d: {"x": d.x_train.numpy()}, r"x must be a torch.Tensor, got ndarray"),
    (lambda d: {"x": d.x_train[:0], "y": d.y_train[:0]}, r"the data is empty"),
    (lambda d: {"y": torch.full((16,), 7), "loss": "ce"}, r"y holds class labels in \[7, 7\] "
                                                           r"but the model has 2 outputs"),
])
def test_objective_refuses_bad_data_naming_the_tensor(problem, change, match):
    data, model = problem
    kwargs = {"model": model, "loss": "mse", "x": data.x_train, "y": data.y_train,
              **change(data)}
    with pytest.raises(ValueError, match=match):
        Objective(**kwargs)


@pytest.mark.parametrize("change,match", [
    (lambda p: dict(list(p.items())[1:]), r"params does not hold the objective's parameters: "
                                          r"missing \['1.weight'\]"),
    (lambda p: {**p, "bogus": torch.zeros(1, dtype=torch.float64)}, r"unknown \['bogus'\]"),
    (lambda p: {**p, "1.weight": torch.zeros(3, 3, dtype=torch.float64)},
     r"params\['1.weight'\] has shape \(3, 3\) but the model's parameter has shape \(4, 2\)"),
    (lambda p: {k: v.float() for k, v in p.items()},
     r"params\['1.weight'\] has dtype torch.float32"),
    (lambda p: {**p, "1.weight": [[0.0]]}, r"params\['1.weight'\] must be a tensor"),
    (lambda p: list(p.values()), r"params must be a dict of tensors"),
])
def test_params_are_checked_by_objective_and_operator(problem, change, match):
    data, model = problem
    objective = Objective(model, "mse", data.x_train, data.y_train)
    bad = change(objective.params())
    with pytest.raises(ValueError, match=match):
        objective(bad)
    with pytest.raises(ValueError, match=match):
        HessianOperator(objective, bad)


def test_operator_refuses_vectors_of_another_dtype_shape_or_type(problem):
    data, model = problem
    op = HessianOperator(Objective(model, "mse", data.x_train, data.y_train))
    with pytest.raises(ValueError, match=r"v has dtype torch.float32 but the operator is "
                                         r"torch.float64"):
        op.matvec(torch.randn(op.numel))
    with pytest.raises(ValueError, match=r"V has dtype torch.float32"):
        op.matmat(torch.randn(op.numel, 2))
    with pytest.raises(ValueError, match=r"v must have shape \(22,\), got \(23,\)"):
        op.matvec(torch.randn(op.numel + 1, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"needs a torch.Tensor, got list"):
        op @ [1.0] * op.numel
    good = op.random(generator=torch.Generator().manual_seed(0))
    assert torch.allclose(op @ good, op.dense() @ good)


def test_hvp_names_missing_vector_entries(problem):
    data, model = problem
    objective = Objective(model, "mse", data.x_train, data.y_train)
    params = objective.params()
    vectors = {n: torch.ones_like(p) for n, p in params.items()}
    with pytest.raises(ValueError, match=r"vectors must be a dict with the names"):
        hvp(objective, params, dict(list(vectors.items())[1:]))
    with pytest.raises(ValueError, match=r"vectors\['1.weight'\] has shape \(2, 2\)"):
        hvp(objective, params, {**vectors, "1.weight": torch.ones(2, 2, dtype=torch.float64)})
    out = hvp(objective, params, vectors)
    assert set(out) == set(params)


def test_operator_checks_its_objective_data_up_front(problem):
    data, model = problem
    with pytest.raises(ValueError, match="x holds 1 NaN"):
        HessianOperator(Objective(model, "mse", _with(data.x_train, 0, float("nan")),
                                  data.y_train))
    with pytest.raises(ValueError, match="objective must be an Objective"):
        HessianOperator(model)


def test_metrics_on_other_data_are_checked(problem):
    data, model = problem
    objective = Objective(model, "mse", data.x_train, data.y_train)
    with pytest.raises(ValueError, match=r"x has dtype torch.float32"):
        objective.metrics(objective.params(), data.x_train.float(), data.y_train)
    assert set(objective.metrics(objective.params())) == {"loss", "acc"}
