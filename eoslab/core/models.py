"""Named architectures, in plain torch, initialised deterministically from a seed.

``build_model(name, input_shape, n_outputs, width=..., depth=..., seed=...)`` understands:

================  =================================================================
``fc-tanh``       fully connected, ``depth`` hidden layers of ``width`` (Cohen et al.
``fc-relu``       2021 use width 200, depth 2), PyTorch's default init, with biases
``fc-elu``
``fc-linear``     a deep *linear* network (same shape, identity activation)
``linear``        one linear map without bias (the quadratic problems)
``cnn``           ``depth`` blocks of conv3x3(``width``)-ReLU-maxpool, then a linear head
``cnn-bn``        the same with BatchNorm after each convolution
``resnet-small``  a conv stem and ``depth`` residual blocks with BatchNorm
``si-mlp``        scale-invariant: bias-free linear layers each followed by BatchNorm
                  without affine parameters, and a *fixed* (untrained) random last
                  layer, so the loss is invariant to scaling each trained weight
                  matrix (Lobacheva et al. 2021; Lyu, Li, Arora 2022)
``scalar-uv``     :math:`f(x) = x \\prod_{j=1}^{depth} u_j` with scalar ``u_j``: the toy model
                  of label-noise and EoS dynamics (``depth=2`` is ``f = u v x``)
================  =================================================================

Flat inputs whose length is a square (digits' 64) are reshaped to one-channel images for
the convolutional nets.  The modules are plain PyTorch (``nn.Tanh``, ``nn.Sequential``);
the engines that train or evaluate them apply the CPU speed layers themselves
(:mod:`eoslab.speed`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from eoslab.core.devices import resolve_device, resolve_dtype

__all__ = ["MODEL_NAMES", "build_model", "count_parameters", "has_batchnorm"]

MODEL_NAMES = ("fc-tanh", "fc-relu", "fc-elu", "fc-linear", "linear", "cnn", "cnn-bn",
               "resnet-small", "si-mlp", "scalar-uv")

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "linear": nn.Identity}
_DEFAULTS = {"fc": (200, 2), "cnn": (32, 2), "cnn-bn": (32, 2), "resnet-small": (16, 2),
             "si-mlp": (128, 2), "scalar-uv": (1, 2), "linear": (1, 1)}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def has_batchnorm(model: nn.Module) -> bool:
    """Whether any module normalises with batch statistics."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _image_shape(input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) == 3:
        return input_shape  # type: ignore[return-value]
    if len(input_shape) == 1 and math.isqrt(input_shape[0]) ** 2 == input_shape[0]:
        side = math.isqrt(input_shape[0])
        return (1, side, side)
    raise ValueError(f"input_shape={input_shape} cannot be read as an image; convolutional "
                     "models need (C, H, W) or a flat square length such as 64")


def _fc(input_shape, n_outputs, width, depth, activation, bias=True) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width, bias=bias), _ACTIVATIONS[activation]()]
        fan_in = width
    layers.append(nn.Linear(fan_in, n_outputs, bias=bias))
    return nn.Sequential(*layers)


def _cnn(input_shape, n_outputs, width, depth, batchnorm) -> nn.Module:
    c, h, w = _image_shape(input_shape)
    layers: list[nn.Module] = [nn.Unflatten(1, (c, h, w))] if len(input_shape) == 1 else []
    for _ in range(depth):
        layers.append(nn.Conv2d(c, width, 3, padding=1, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm2d(width))
        layers += [nn.ReLU(), nn.MaxPool2d(2) if min(h, w) >= 2 else nn.Identity()]
        c, h, w = width, max(h // 2, 1), max(w // 2, 1)
    layers += [nn.Flatten(), nn.Linear(c * h * w, n_outputs)]
    return nn.Sequential(*layers)


class _ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(out)))


def _resnet(input_shape, n_outputs, width, depth) -> nn.Module:
    c, h, w = _image_shape(input_shape)
    layers: list[nn.Module] = [nn.Unflatten(1, (c, h, w))] if len(input_shape) == 1 else []
    layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    layers += [_ResidualBlock(width) for _ in range(depth)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, n_outputs)]
    return nn.Sequential(*layers)


class _FixedLinear(nn.Module):
    """A random linear map that is a buffer, not a parameter (never trained)."""

    def __init__(self, fan_in: int, fan_out: int):
        super().__init__()
        self.register_buffer("weight", torch.randn(fan_out, fan_in) / math.sqrt(fan_in))

    def forward(self, x):
        return x @ self.weight.T


def _si_mlp(input_shape, n_outputs, width, depth) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    fan_in = math.prod(input_shape)
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width, bias=False), nn.BatchNorm1d(width, affine=False),
                   nn.ReLU()]
        fan_in = width
    layers.append(_FixedLinear(fan_in, n_outputs))
    return nn.Sequential(*layers)


class ScalarProduct(nn.Module):
    """:math:`f(x) = x \\prod_j u_j` with scalar parameters ``u_j`` (``u`` , ``v`` for depth 2)."""

    def __init__(self, depth: int, init: Sequence[float] | None = None):
        super().__init__()
        values = torch.as_tensor(init if init is not None else 1.0 + 0.5 * torch.randn(depth),
                                 dtype=torch.get_default_dtype())
        if values.numel() != depth:
            raise ValueError(f"init has {values.numel()} values but depth={depth}")
        self.u = nn.Parameter(values.reshape(depth).clone())

    def forward(self, x):
        return x * self.u.prod()


def _check_size(name: str, value, default: int, minimum: int) -> int:
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed; use an integer >= {minimum}")
    return value


def build_model(name: str, input_shape: Sequence[int], n_outputs: int, *,
                width: int | None = None, depth: int | None = None, seed: int = 0,
                bias: bool = True, device=None, dtype="float32",
                init: Sequence[float] | None = None) -> nn.Module:
    """Build the architecture ``name`` with a deterministic initialisation.

    Args:
        name: one of :data:`MODEL_NAMES`.
        input_shape: shape of one input, e.g. ``(64,)`` for digits or ``(3, 32, 32)``.
        n_outputs: width of the last layer (classes, or regression outputs).
        width: hidden width, or channels of the convolutional nets.
        depth: number of hidden layers or blocks.
        seed: the initialisation depends on this seed only (not on the global RNG).
        bias: biases in the fully connected nets.
        device: where the parameters live (``None`` or ``"auto"``: CUDA when available).
        dtype: the parameters' floating-point type.
        init: explicit initial values for ``scalar-uv``.

    Raises:
        ValueError: unknown name or bad sizes, naming the value and the allowed ones.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODEL_NAMES)}")
    input_shape = tuple(int(s) for s in input_shape)
    family = "fc" if name.startswith("fc-") else name
    d_width, d_depth = _DEFAULTS[family]
    width = _check_size("width", width, d_width, 1)
    depth = _check_size("depth", depth, d_depth, 0 if family in ("fc", "resnet-small") else 1)
    n_outputs = _check_size("n_outputs", n_outputs, 1, 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "fc":
            model = _fc(input_shape, n_outputs, width, depth, name[3:], bias)
        elif name == "linear":
            model = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), n_outputs,
                                                          bias=False))
        elif name in ("cnn", "cnn-bn"):
            model = _cnn(input_shape, n_outputs, width, depth, batchnorm=name == "cnn-bn")
        elif name == "resnet-small":
            model = _resnet(input_shape, n_outputs, width, depth)
        elif name == "si-mlp":
            model = _si_mlp(input_shape, n_outputs, width, depth)
        else:
            model = ScalarProduct(depth, init)
    return model.to(device=resolve_device(device), dtype=resolve_dtype(dtype))
