"""stacked_forward against every copy's own module, and against vmap's gradients (float64)."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, stack_module_state, vmap

from eoslab.core.models import build_model
from eoslab.speed.stacked_mlp import stacked_forward


def _copies(name, n=4, **kw):
    nets = [build_model(name, (36,), 3, seed=i, dtype="float64", **kw) for i in range(n)]
    params, _ = stack_module_state(nets)
    return nets, {k: v.detach() for k, v in params.items()}


@pytest.mark.parametrize("name,kw", [("fc-tanh", {"width": 5, "depth": 2}),
                                     ("fc-relu", {"width": 4, "depth": 3}),
                                     ("fc-elu", {"width": 6, "depth": 1}),
                                     ("fc-linear", {"width": 3, "depth": 2}),
                                     ("fc-tanh", {"width": 5, "depth": 0}),
                                     ("linear", {})])
def test_outputs_equal_each_copys_module(name, kw):
    nets, params = _copies(name, **kw)
    x = torch.randn(11, 36, dtype=torch.float64)
    out = stacked_forward(nets[0], (36,))(params, x)
    assert out.shape == (4, 11, 3)
    for c, net in enumerate(nets):
        torch.testing.assert_close(out[c], net(x), rtol=0, atol=1e-12)


def test_image_inputs_through_the_leading_flatten():
    nets, params = _copies("fc-tanh", width=5, depth=2)
    x = torch.randn(7, 1, 6, 6, dtype=torch.float64)
    out = stacked_forward(nets[0], (1, 6, 6))(params, x)
    for c, net in enumerate(nets):
        torch.testing.assert_close(out[c], net(x), rtol=0, atol=1e-12)


def test_bias_free_layers():
    nets = [nn.Sequential(nn.Linear(4, 3, bias=False), nn.Tanh(), nn.Linear(3, 2)).double()
            for _ in range(3)]
    params, _ = stack_module_state(nets)
    x = torch.randn(5, 4, dtype=torch.float64)
    out = stacked_forward(nets[0], (4,))(params, x)
    for c, net in enumerate(nets):
        torch.testing.assert_close(out[c], net(x), rtol=0, atol=1e-12)


def test_autograd_through_it_gives_every_copys_gradient():
    """The gradient of the sum of per-copy losses is, block by block, each copy's gradient."""
    nets, params = _copies("fc-tanh", width=5, depth=2)
    x, y = torch.randn(9, 36, dtype=torch.float64), torch.randn(9, 3, dtype=torch.float64)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    out = stacked_forward(nets[0], (36,))(leaves, x)
    losses = 0.5 * (out - y).pow(2).sum(-1).mean(-1)
    grads = torch.autograd.grad(losses.sum(), list(leaves.values()))
    base = nets[0]

    def loss(p):
        return 0.5 * (functional_call(base, p, (x,)) - y).pow(2).sum(-1).mean()

    ref = vmap(grad(loss))(params)
    for name, g in zip(leaves, grads):
        torch.testing.assert_close(g, ref[name], rtol=0, atol=1e-12)


class _Wrapped(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))

    def forward(self, x):
        return self.net(x)


@pytest.mark.parametrize("model,shape", [
    (_Wrapped(), (4,)),                                                   # not a Sequential
    (nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2)), (4,)),  # buffers
    (nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.1), nn.Linear(3, 2)), (4,)),    # random
    (nn.Sequential(nn.Linear(4, 3), nn.Flatten(), nn.Linear(3, 2)), (4,)),  # Flatten later
    (nn.Sequential(nn.Linear(4, 3), nn.PReLU(), nn.Linear(3, 2)), (4,)),  # parametrised act
    (nn.Sequential(nn.Tanh(), nn.Identity()), (4,)),                        # no Linear
    (nn.Sequential(nn.Linear(4, 3), nn.Tanh()), (2, 4)),                    # non-flat input
    (build_model("cnn", (64,), 10, width=2, depth=1), (64,)),
])
def test_anything_else_is_left_to_the_general_path(model, shape):
    assert stacked_forward(model, shape) is None
