"""eoslab.chapters.ch07_threshold_neurons.threshold_neuron against brute force on tiny
float64 problems."""

import math

import pytest
import torch

from eoslab.chapters.ch07_threshold_neurons.threshold_neuron import (
    dead_bias,
    init_params,
    initial_sharpness,
    logistic_loss,
    network_output,
    sparse_coding,
    train,
)


def test_output_matches_a_per_unit_loop():
    x, _ = sparse_coding(5, 3, signal=2.0, seed=1)
    p = init_params(3, [0, 1])
    p["bias"] = torch.tensor([0.3, -0.4], dtype=torch.float64)
    out = network_output(p, x)
    for c in range(2):
        for k in range(5):
            want = sum(p["a_plus"][c, i] * max(x[k, i] + p["bias"][c], 0)
                       - p["a_minus"][c, i] * max(-x[k, i] + p["bias"][c], 0) for i in range(3))
            assert float(out[c, k]) == pytest.approx(float(want), abs=1e-12)


def test_the_spike_carries_the_label():
    x, y = sparse_coding(400, 5, signal=4.0, seed=0)
    spike = x.abs().argmax(dim=1)
    assert (torch.sign(x[torch.arange(400), spike]) == y).double().mean() > 0.95


def test_sharpness_matches_the_dense_hessian():
    x, y = sparse_coding(30, 4, seed=2)
    p = init_params(4, [3])
    flat = torch.cat([p["a_plus"][0], p["a_minus"][0], p["bias"]])

    def loss(q):
        return logistic_loss({"a_plus": q[:4], "a_minus": q[4:8], "bias": q[8]}, x, y)

    dense = torch.linalg.eigvalsh(torch.func.hessian(loss)(flat))[-1]
    assert initial_sharpness(p, x, y)[0] == pytest.approx(float(dense), rel=1e-7)


def test_batched_gd_matches_one_copy_at_a_time(device):
    x, y = (t.to(device) for t in sparse_coding(20, 3, seed=4))
    p = init_params(3, [0, 1, 2], device=device)
    lrs, time_ = [0.5, 1.0, 3.0], 3.0
    out = train(p, x, y, lrs, time_, min_steps=2)
    assert out["steps"] == [6, 3, 2]
    for c, lr in enumerate(lrs):
        q = {k: v[c].clone().requires_grad_(True) for k, v in p.items()}
        for _ in range(out["steps"][c]):
            one = {k: v.unsqueeze(0) for k, v in q.items()}
            grads = torch.autograd.grad(logistic_loss(one, x, y).sum(), list(q.values()))
            q = {k: (v - lr * g).detach().requires_grad_(True)
                 for (k, v), g in zip(q.items(), grads)}
        for k in q:
            assert torch.allclose(out["params"][k][c], q[k].detach(), atol=1e-12), k
    # history: bias of every copy at every step, frozen after its own T_c
    assert out["bias"].shape == (7, 3) and torch.equal(out["bias"][3, 1], out["bias"][6, 1])


def test_a_dead_neuron_is_reported():
    x, y = sparse_coding(10, 3, seed=0)
    p = init_params(3, [0, 1])
    p["bias"] = torch.tensor([0.0, dead_bias(x) - 0.1], dtype=torch.float64)
    out = train(p, x, y, [0.1, 0.1], 0.5)
    assert out["dead"] == [False, True]
    assert float(network_output(out["params"], x)[1].abs().max()) == 0.0
    assert float(out["loss"][-1, 1]) == pytest.approx(math.log(2))


@pytest.mark.parametrize("kwargs,match", [({"lrs": [0.1]}, "lrs"), ({"lrs": [0.1, -1.0]}, "lrs"),
                                          ({"time": 0.0}, "time")])
def test_bad_arguments_are_refused(kwargs, match):
    x, y = sparse_coding(10, 3)
    args = {"params": init_params(3, [0, 1]), "x": x, "y": y, "lrs": [0.1, 0.2], "time": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        train(**args)
    with pytest.raises(ValueError, match="n=0"):
        sparse_coding(0, 3)


def test_the_sharpest_direction_is_the_label_blind_even_one():
    d = 40
    x, y = sparse_coding(3000, d, seed=5)
    p = init_params(d, [0])
    flat = torch.cat([p["a_plus"][0], p["a_minus"][0], p["bias"]])

    def loss(q):
        return logistic_loss({"a_plus": q[:d], "a_minus": q[d:2 * d], "bias": q[2 * d]}, x, y)

    values, vectors = torch.linalg.eigh(torch.func.hessian(loss)(flat))
    even = torch.cat([torch.ones(d), -torch.ones(d), torch.zeros(1)]).double()
    assert abs(float(vectors[:, -1] @ even)) / even.norm() > 0.95
    # its curvature is about d/(4 pi) (the mean of ReLU(xi) is 1/sqrt(2 pi), l''(0) = 1/4)
    assert float(values[-1]) == pytest.approx(d / (4 * math.pi), rel=0.2)
