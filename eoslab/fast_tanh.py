"""``tanh`` computed as :math:`2\\sigma(2x) - 1` on CPU tensors, inside a ``with`` block.

The identity :math:`\\tanh x = 2\\sigma(2x) - 1` is exact; in floating point the right side
has an absolute error of a few units in the last place of 1 (about 1e-7 in float32, 2e-16
in float64), which is the rounding the matrix products around every activation already
make.  The reason to use it is speed: torch 2.13's CPU ``tanh`` kernel is about 3.5x slower
than its ``sigmoid`` on the AVX2 machines this project is built on (0.83 ms against 0.23 ms
for 200,000 float32 values on one core), and an fc-tanh net spends a third of a forward
pass in ``tanh`` there (``benchmarks/bench_plane.md``).  CUDA tensors and everything that
is not ``tanh`` pass through unchanged: on a GPU both kernels are bandwidth-bound and the
three extra passes would only cost time.

It is a :class:`torch.overrides.TorchFunctionMode`, so any module that calls
``torch.tanh``/``Tensor.tanh`` (``nn.Tanh``, ``F.tanh``) is served without being rewritten,
under ``torch.func.vmap`` and ``functional_call`` too.

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
from torch.overrides import TorchFunctionMode

__all__ = ["FastTanh"]

_TANH = (torch.tanh, torch.Tensor.tanh)


class FastTanh(TorchFunctionMode):
    """Within the block, ``tanh`` of a CPU floating-point tensor is ``2 * sigmoid(2x) - 1``."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _TANH and not kwargs and len(args) == 1:
            x = args[0]
            if isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.is_floating_point():
                if torch.is_grad_enabled() and x.requires_grad:
                    return torch.sigmoid(x * 2) * 2 - 1   # autograd keeps sigmoid's output
                return (x * 2).sigmoid_().mul_(2).sub_(1)
        return func(*args, **kwargs)
