"""``tanh`` computed as :math:`2\\sigma(2x) - 1` on CPU tensors, inside a ``with`` block.

The identity :math:`\\tanh x = 2\\sigma(2x) - 1` is exact; in floating point the right side
has an absolute error of a few units in the last place of 1 (about 1e-7 in float32, 2e-16
in float64), which is the rounding the matrix products around every activation already
make.  The reason to use it is speed: on x86 CPUs PyTorch's ``tanh`` kernel is several
times slower than its ``sigmoid``, and an fc-tanh net spends a large share of a forward
pass in ``tanh`` (figures in ``benchmarks/bench_plane.md``).  CUDA tensors and everything
that is not ``tanh`` pass through unchanged: on a GPU both kernels are bandwidth-bound
and the three extra passes would only cost time.

The engines apply it through the switch of :mod:`eoslab.speed.switch` (model code builds
plain ``nn.Tanh``); two ways in:

* :class:`FastTanh`, a :class:`torch.overrides.TorchFunctionMode`: any module that calls
  ``torch.tanh``/``Tensor.tanh`` (``nn.Tanh``, ``F.tanh``) is served without being
  rewritten, under ``torch.func.vmap`` and ``functional_call`` too (the batched plane
  evaluation of :mod:`eoslab.geometry.landscape`).
* :func:`tanh` and the module :class:`Tanh` (what :func:`eoslab.speed.switch.accelerated`
  turns a model's ``nn.Tanh`` into for the duration of ``fit`` or a sweep): on CPU
  tensors large enough to gain.  Without autograd the identity runs in place; with
  autograd it is :class:`_OneNodeTanh`, one graph node that saves :math:`y = \\tanh x`
  and whose backward is ATen's own ``tanh_backward``,
  :math:`\\bar x = \\bar y\\,(1 - y^2)` (itself differentiable, so Hessian-vector
  products by double backward work).  Small tensors, tensors inside ``torch.func``
  transforms and forward-mode dual tensors get ``torch.tanh``: the Python-level function
  has a fixed cost per call, so it only pays above :data:`GRAD_MIN_NUMEL` elements, and
  the in-place form above :data:`NO_GRAD_MIN_NUMEL`.

Example:
    >>> import torch
    >>> x = torch.linspace(-5, 5, 11, dtype=torch.float64)
    >>> with FastTanh():
    ...     y = torch.nn.Tanh()(x)
    >>> float((y - torch.tanh(x)).abs().max()) < 1e-15
    True
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd import forward_ad
from torch.overrides import TorchFunctionMode

__all__ = ["GRAD_MIN_NUMEL", "NO_GRAD_MIN_NUMEL", "FastTanh", "Tanh", "tanh"]

_TANH = (torch.tanh, torch.Tensor.tanh)

#: Elements from which the in-place identity beats ``torch.tanh`` without autograd
#: (crossover measured in ``benchmarks/README.md``).
NO_GRAD_MIN_NUMEL = 2**15
#: Elements from which :class:`_OneNodeTanh` beats ``torch.tanh`` forward and backward.
GRAD_MIN_NUMEL = 2**16


def _identity(x: torch.Tensor) -> torch.Tensor:
    """:math:`2\\sigma(2x) - 1` in a fresh tensor (three in-place passes after the first)."""
    return (x * 2).sigmoid_().mul_(2).sub_(1)


class _OneNodeTanh(torch.autograd.Function):
    """``tanh`` by the identity, recorded as one autograd node with ATen's backward."""

    @staticmethod
    def forward(ctx, x):
        y = _identity(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, y)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """``torch.tanh(x)``, computed as :math:`2\\sigma(2x) - 1` where that is faster.

    That is: CPU floating-point tensors with at least :data:`NO_GRAD_MIN_NUMEL` elements
    when no gradient is recorded, or :data:`GRAD_MIN_NUMEL` when one is, outside
    ``torch.func`` transforms and forward-mode AD, and not while ``torch.compile`` traces
    (its generated kernels fuse ``tanh`` anyway).  Everything else calls ``torch.tanh``.

    >>> x = torch.linspace(-4, 4, 2**16, dtype=torch.float64)
    >>> float((tanh(x) - torch.tanh(x)).abs().max()) < 1e-15
    True
    """
    if (x.device.type != "cpu" or not x.is_floating_point() or torch.compiler.is_compiling()
            or torch._C._functorch.is_functorch_wrapped_tensor(x)):
        return torch.tanh(x)
    if not (x.requires_grad and torch.is_grad_enabled()):
        return _identity(x) if x.numel() >= NO_GRAD_MIN_NUMEL else torch.tanh(x)
    if x.numel() < GRAD_MIN_NUMEL or forward_ad.unpack_dual(x).tangent is not None:
        return torch.tanh(x)
    return _OneNodeTanh.apply(x)


class Tanh(nn.Tanh):
    """``nn.Tanh`` whose forward is :func:`tanh`.

    An ``nn.Tanh``, so code that looks for one still finds it.  It adds no state, so
    :func:`eoslab.speed.switch.accelerated` can switch an ``nn.Tanh`` instance's class to
    it and back.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return tanh(input)


class FastTanh(TorchFunctionMode):
    """Within the block, ``tanh`` of a CPU floating-point tensor is ``2 * sigmoid(2x) - 1``."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _TANH and not kwargs and len(args) == 1:
            x = args[0]
            if isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.is_floating_point():
                if torch.is_grad_enabled() and x.requires_grad:
                    return torch.sigmoid(x * 2) * 2 - 1   # autograd keeps sigmoid's output
                return _identity(x)
        return func(*args, **kwargs)
