"""Hessian-vector products against a brute-force dense Hessian on tiny float64 problems."""

import numpy as np
import pytest
import torch
from scipy.sparse.linalg import eigsh

from eoslab import Objective, build_model, load_dataset
from eoslab.curvature.hessian import HessianOperator, flatten, hvp, unflatten


def tiny(model="fc-tanh", loss="mse", device="cpu", dtype="float64", n=24, chunk_size=None,
         train_mode=False, names=None, seed=0):
    data = load_dataset("digits", n_train=n, classes=3, loss=loss, device=device, dtype=dtype,
                        seed=seed)
    extra = {"width": 4, "depth": 2} if model.startswith("fc") else {"width": 2, "depth": 1}
    net = build_model(model, data.input_shape, data.n_outputs, seed=seed, device=device,
                      dtype=dtype, **extra)
    return Objective(net, loss, data.x_train, data.y_train, chunk_size=chunk_size,
                     train_mode=train_mode, names=names)


def dense_reference(objective: Objective) -> torch.Tensor:
    """Brute force: double-backward ``torch.autograd.functional.hessian`` of L(flat theta)."""
    params = objective.params()
    flat = flatten(params)

    def f(theta):
        return objective(unflatten(theta, params))

    return torch.autograd.functional.hessian(f, flat)


@pytest.mark.parametrize("method", ["forward", "cached"])
@pytest.mark.parametrize("loss,chunk", [("mse", None), ("mse", 7), ("ce", 5), ("sqrt-mse", None),
                                        ("sqrt-mse", 7)])
def test_hvp_matches_dense_hessian(device, loss, chunk, method):
    obj = tiny(loss=loss, device=device, chunk_size=chunk)
    H = dense_reference(obj)
    op = HessianOperator(obj, method=method)
    assert op.method == method
    gen = torch.Generator().manual_seed(1)
    v = op.random(generator=gen)
    torch.testing.assert_close(op.matvec(v), H @ v, rtol=0, atol=1e-10)
    V = op.random(5, generator=gen)
    torch.testing.assert_close(op.matmat(V), H @ V, rtol=0, atol=1e-10)
    torch.testing.assert_close(op.dense(batch=40), H, rtol=0, atol=1e-10)
    assert op.hvps == 1 + 5 + op.numel


def test_gradient_matches_autograd():
    obj = tiny(loss="sqrt-mse", chunk_size=10)
    params = {n: p.requires_grad_(True) for n, p in obj.params().items()}
    expected = flatten(torch.autograd.grad(obj(params), list(params.values())))
    torch.testing.assert_close(HessianOperator(obj).gradient(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["forward", "cached"])
@pytest.mark.parametrize("train_mode", [False, True])
def test_batchnorm_modes_are_exact_and_leave_buffers_alone(train_mode, method):
    obj = tiny(model="cnn-bn", train_mode=train_mode, n=12)
    obj.model.train()
    with torch.no_grad():  # non-trivial running statistics, so the two modes differ
        obj.model(obj.x * 2 + 1)
    before = {n: b.clone() for n, b in obj.model.named_buffers()}
    H = dense_reference(obj)
    op = HessianOperator(obj, method=method)
    V = op.random(3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(op.matvec(V[:, 0]), H @ V[:, 0], rtol=0, atol=1e-10)
    torch.testing.assert_close(op.matmat(V), H @ V, rtol=0, atol=1e-10)
    for name, buf in obj.model.named_buffers():
        assert torch.equal(buf, before[name]), name


def test_modes_differ_for_batchnorm():
    a, b = tiny(model="cnn-bn", n=12), tiny(model="cnn-bn", n=12, train_mode=True)
    v = HessianOperator(a).random(generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(HessianOperator(a).matvec(v), HessianOperator(b).matvec(v))


def test_parameter_block_is_a_sub_block_of_the_full_hessian():
    full = tiny()
    names = ("3.weight", "3.bias")
    block = tiny(names=names)
    H = dense_reference(full)
    sizes = {n: p.numel() for n, p in full.params().items()}
    offsets = np.cumsum([0] + list(sizes.values()))
    index = {n: (offsets[i], offsets[i + 1]) for i, n in enumerate(sizes)}
    rows = torch.cat([torch.arange(*index[n]) for n in names])
    torch.testing.assert_close(HessianOperator(block).dense(), H[rows][:, rows], rtol=0,
                               atol=1e-10)


def test_quadratic_hessian_is_the_chosen_matrix(device):
    spectrum = [9.0, 4.0, 2.5, 1.0, 0.5, 0.0]
    data = load_dataset("quadratic", spectrum=spectrum, dtype="float64", device=device)
    model = build_model("linear", data.input_shape, 1, dtype="float64", device=device)
    op = HessianOperator(Objective(model, "mse", data.x_train, data.y_train))
    A = torch.as_tensor(data.meta["A"], device=device)
    torch.testing.assert_close(op.dense(), A, rtol=0, atol=1e-10)


def test_scipy_view_cross_checks_eigenvalues():
    obj = tiny()
    op = HessianOperator(obj)
    top = np.sort(eigsh(op.to_scipy(), k=2, which="LA", ncv=40)[0])[::-1]
    exact = torch.linalg.eigvalsh(dense_reference(obj)).flip(0)[:2].numpy()
    np.testing.assert_allclose(top, exact, rtol=1e-9)


def test_float32_products_are_close(device):
    obj64, obj32 = tiny(device=device), tiny(device=device, dtype="float32")
    H = dense_reference(obj64)
    op = HessianOperator(obj32)
    v = op.random(generator=torch.Generator().manual_seed(0))
    assert op.matvec(v).dtype == torch.float32
    torch.testing.assert_close(op.matvec(v).double(), H @ v.double(), rtol=1e-4, atol=1e-4)


def test_hvp_function_on_dicts_single_and_batched():
    obj = tiny()
    params = obj.params()
    H = dense_reference(obj)
    vec = {n: torch.randn_like(p) for n, p in params.items()}
    out = hvp(obj, params, vec)
    torch.testing.assert_close(flatten(out), H @ flatten(vec), rtol=0, atol=1e-10)
    batch = {n: torch.randn(2, *p.shape, dtype=p.dtype) for n, p in params.items()}
    out = hvp(obj, params, batch)
    flat_in = torch.cat([batch[n].reshape(2, -1) for n in params], 1)
    flat_out = torch.cat([out[n].reshape(2, -1) for n in params], 1)
    torch.testing.assert_close(flat_out, flat_in @ H, rtol=0, atol=1e-10)


def test_bad_inputs_raise_clear_errors():
    obj = tiny()
    params = obj.params()
    params["1.weight"][0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        HessianOperator(obj, params)
    op = HessianOperator(obj)
    with pytest.raises(ValueError, match="shape"):
        op.matvec(torch.zeros(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="empty"):
        Objective(obj.model, "mse", obj.x[:0], obj.y[:0])
    with pytest.raises(ValueError, match="rademacher"):
        op.random(kind="uniform")
    with pytest.raises(ValueError, match="method"):
        HessianOperator(obj, method="double-backward")


def test_auto_method_caches_the_graph_only_for_one_chunk():
    assert HessianOperator(tiny()).method == "cached"
    assert HessianOperator(tiny(chunk_size=7)).method == "forward"
    assert HessianOperator(tiny(chunk_size=100)).method == "cached"
