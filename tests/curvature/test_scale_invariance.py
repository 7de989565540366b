"""Scale invariance and its consequences, checked exactly on a tiny float64 problem."""

import math

import pytest
import torch
from torch.func import functional_call, grad, hessian

from eoslab.curvature.eigen import top_eigen
from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.objective import Objective
from eoslab.curvature.scale_invariance import (
    ScaleInvariantMLP,
    ScaleInvariantProbe,
    effective_lr,
    group_norms,
    scale_invariant_names,
    spherical_sharpness,
    total_norm,
    wd_norm_step,
)


def _problem(norm, device, n=12):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(n, 5, generator=gen, dtype=torch.float64).to(device)
    y = torch.randint(0, 3, (n,), generator=gen).to(device)
    net = ScaleInvariantMLP(5, 3, width=4, depth=2, norm=norm, out_scale=3.0,
                            eps=1e-12, seed=2)
    net = net.to(device=device, dtype=torch.float64)
    obj = Objective(net, "cross-entropy", x, y, train_mode=True)
    return net, obj


def _scaled(params, names, c):
    return {k: (c * v if k in names else v) for k, v in params.items()}


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_loss_is_invariant_to_scaling_each_group(norm, device):
    net, obj = _problem(norm, device)
    names = scale_invariant_names(net)
    assert names == ("1.weight", "4.weight")
    p = obj.params()
    base = float(obj(p))
    for c in (0.3, 4.0):
        for group in ((names[0],), (names[1],), names):
            assert math.isclose(float(obj(_scaled(p, group, c))), base, rel_tol=1e-6)


def test_the_unnormalised_net_is_not_scale_invariant(device):
    net, obj = _problem("none", device)
    assert scale_invariant_names(net) == ()
    p = obj.params()
    assert abs(float(obj(_scaled(p, tuple(p), 2.0))) - float(obj(p))) > 1e-3


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_gradient_is_orthogonal_to_w_and_scales_as_one_over_c(norm, device):
    net, obj = _problem(norm, device)
    names = scale_invariant_names(net)
    p = obj.params()
    g = grad(obj)(p)
    for n in names:
        cosine = float((g[n] * p[n]).sum() / (g[n].norm() * p[n].norm()))
        assert abs(cosine) < 1e-6
    c = 2.5
    g_c = grad(obj)(_scaled(p, names, c))
    for n in names:
        torch.testing.assert_close(g_c[n], g[n] / c, rtol=1e-6, atol=1e-10)


def test_hessian_scales_as_one_over_c_squared_and_spherical_sharpness_does_not(device):
    net, obj = _problem("batch", device)
    names = scale_invariant_names(net)
    p = obj.params()
    c = 3.0
    dense = HessianOperator(obj, p).dense()
    dense_c = HessianOperator(obj, _scaled(p, names, c)).dense()
    torch.testing.assert_close(dense_c, dense / c ** 2, rtol=1e-6, atol=1e-9)
    # the operator agrees with torch.func.hessian on the flat vector
    flat_names = list(p)
    shapes = [p[k].shape for k in flat_names]

    def flat_loss(v):
        parts, i = {}, 0
        for k, s in zip(flat_names, shapes):
            parts[k] = v[i:i + s.numel()].reshape(s)
            i += s.numel()
        return obj(parts)

    exact = hessian(flat_loss)(torch.cat([p[k].reshape(-1) for k in flat_names]))
    torch.testing.assert_close(dense, exact, rtol=1e-6, atol=1e-9)
    top = float(torch.linalg.eigvalsh(dense)[-1])
    norm = total_norm(group_norms(p, names))
    s1 = spherical_sharpness(float(top_eigen(HessianOperator(obj, p), tol=1e-10).values[0]),
                             norm)
    s2 = spherical_sharpness(float(top_eigen(HessianOperator(obj, _scaled(p, names, c)),
                                             tol=1e-10).values[0]), c * norm)
    assert math.isclose(s1, top * norm ** 2, rel_tol=1e-6)
    assert math.isclose(s1, s2, rel_tol=1e-6)


def test_gd_with_weight_decay_follows_the_closed_form_norm_recursion(device):
    net, obj = _problem("batch", device)
    names = scale_invariant_names(net)
    lr, wd = 0.7, 0.05
    opt = torch.optim.SGD(net.parameters(), lr=lr, weight_decay=wd)
    for _ in range(5):
        before = group_norms(dict(net.named_parameters()), names)
        g = grad(obj)(obj.params())
        opt.zero_grad()
        loss = obj({k: v for k, v in net.named_parameters()})
        loss.backward()
        opt.step()
        after = group_norms(dict(net.named_parameters()), names)
        for n in names:
            want = wd_norm_step(before[n] ** 2, float(g[n].norm()) ** 2, lr=lr, wd=wd)
            assert math.isclose(after[n] ** 2, want, rel_tol=1e-9)


def test_effective_lr_is_lr_over_norm_squared_and_rejects_bad_values():
    assert effective_lr(0.2, 2.0) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="norm"):
        effective_lr(0.1, 0.0)
    with pytest.raises(ValueError, match="lr"):
        effective_lr(-1.0, 1.0)
    with pytest.raises(ValueError, match="wd"):
        wd_norm_step(1.0, 1.0, 0.1, -0.5)
    with pytest.raises(ValueError, match="norm='group'"):
        ScaleInvariantMLP(4, 2, norm="group")
    with pytest.raises(ValueError, match="init='xavier'"):
        ScaleInvariantMLP(4, 2, init="xavier")
    with pytest.raises(ValueError, match="width"):
        ScaleInvariantMLP(4, 2, width=0)
    with pytest.raises(ValueError, match="unknown parameter"):
        group_norms({"a": torch.ones(2)}, ["b"])


def test_probe_reports_norms_effective_lr_and_spherical_sharpness(device):
    from eoslab.core.train import ProbeContext

    net, obj = _problem("batch", device)
    names = scale_invariant_names(net)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    row = ScaleInvariantProbe(1, sharpness=True, tol=1e-8)(
        ProbeContext(0, net, opt, Objective(net, "cross-entropy", obj.x, obj.y), None, 0.5))
    norm = total_norm(group_norms(dict(net.named_parameters()), names))
    assert row["si_norm"] == pytest.approx(norm)
    assert row["eff_lr"] == pytest.approx(0.5 / norm ** 2)
    top = float(torch.linalg.eigvalsh(HessianOperator(obj).dense())[-1])
    assert row["sharpness"] == pytest.approx(top, rel=1e-5)  # train-mode BN, as trained
    assert row["spherical_sharpness"] == pytest.approx(top * norm ** 2, rel=1e-5)
    # same function values as the module itself (functional_call is not needed elsewhere)
    out = functional_call(net, dict(net.named_parameters()), (obj.x,))
    assert out.shape == (obj.x.shape[0], 3)


def test_kaiming_init_keeps_the_relu_signal_size_without_normalisation():
    torch.manual_seed(0)
    x = torch.randn(4000, 50, dtype=torch.float64)
    net = ScaleInvariantMLP(50, 3, width=400, depth=3, norm="none", init="kaiming", seed=0)
    net = net.double()
    with torch.no_grad():
        h = x
        for layer in list(net)[1:-1]:
            h = layer(h)
        # Var(z) = 2/fan_in * sum_i E[h_i^2] = 2 and E[relu(z)^2] = Var(z)/2 = 1, every layer
        assert float((h ** 2).mean()) == pytest.approx(1.0, rel=0.1)
        plain = ScaleInvariantMLP(50, 3, width=400, depth=3, norm="none", seed=0).double()
        h = x
        for layer in list(plain)[1:-1]:
            h = layer(h)
        assert float((h ** 2).mean()) < 0.1  # PyTorch's default init shrinks it
