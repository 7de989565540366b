"""How much memory a run needs, estimated before anything is allocated.

:func:`estimate_memory` adds the data (float64 while it is prepared, then in the run's
dtype), the parameters with their gradients and two optimiser buffers, and the activations
of one forward/backward pass; :func:`check_memory` refuses a run over
:data:`~eoslab.core.options.MAX_MEMORY_BYTES` with that estimate, instead of letting it
fail inside the allocator.

    >>> format_bytes(3 * 2**30)
    '3 GiB'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from eoslab.core.checks import show
from eoslab.core.options import MAX_MEMORY_BYTES, dataset_family, dataset_shape, image_shape

__all__ = ["check_memory", "estimate_memory", "format_bytes"]

def _model_size(model: str, input_shape, n_outputs: int, width: int, depth: int
                ) -> tuple[int, int]:
    """``(parameters, hidden units per example)`` of a model (an estimate for conv nets)."""
    size = math.prod(input_shape)
    if model.startswith("fc-") or model == "si-mlp":
        bias = int(model != "si-mlp")
        if depth == 0:
            return size * n_outputs + n_outputs * bias, 0
        hidden = (size + bias) * width + (depth - 1) * (width + bias) * width
        return hidden + (width + bias) * n_outputs, width * depth
    if model == "linear":
        return size * n_outputs, 0
    if model == "scalar-uv":
        return depth, 0
    c, h, w = image_shape(tuple(input_shape)) or (1, 1, size)
    if model == "resnet-small":
        return (9 * c * width + 18 * depth * width * width + width * n_outputs,
                width * h * w * (1 + 2 * depth))
    params, units, block = 0, 0, 0
    while block < depth and (h > 1 or w > 1 or block == 0):  # cnn / cnn-bn: conv3x3 +
        params += 9 * c * width + 2 * width  # (BatchNorm) + ReLU + maxpool, halving H, W
        units += width * h * w
        c, h, w = width, max(h // 2, 1), max(w // 2, 1)
        block += 1
    params += (depth - block) * (9 * width * width + 2 * width)  # the rest are 1 x 1
    units += (depth - block) * width
    return params + c * h * w * n_outputs + n_outputs, units


def estimate_memory(*, dataset: str, options: Mapping, classes, n_train: int, model: str,
                    width: int, depth: int, batch: int, dtype: str) -> dict[str, float]:
    """Bytes a run needs for its ``data``, ``parameters`` and ``activations``.

    ``parameters`` counts four copies: weights, gradients and two optimiser buffers.

    ``batch`` is the number of examples of one forward/backward pass (the full batch, a
    chunk or a minibatch); activations count pre-activation, activation and gradient.
    """
    input_shape, n_outputs, _ = dataset_shape(dataset, options, classes)
    item = torch.finfo(getattr(torch, dtype)).bits // 8
    n_test = options.get("n_test")
    if n_test is None:
        family = dataset_family(dataset)
        n_test = {"cifar10-<n>k": 10_000, "teacher": 500, "sine": 256, "quadratic": 0,
                  "digits": max(1797 - n_train, 0)}.get(family, 200)
    params, units = _model_size(model, input_shape, n_outputs, width, depth)
    return {"data": float(n_train + n_test) * math.prod(input_shape) * (8 + item),
            "parameters": 4.0 * params * item,
            "activations": 3.0 * batch * units * item}


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units: ``format_bytes(3 * 2**30) == '3 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_memory(estimate: Mapping[str, float], sizes: Mapping[str, Any]) -> None:
    """Refuse a run whose :func:`estimate_memory` exceeds :data:`MAX_MEMORY_BYTES`.

    ``sizes`` are the fields that set the estimate, named in the message with their values.
    """
    total = sum(estimate.values())
    if total <= MAX_MEMORY_BYTES:
        return
    named = ", ".join(f"{k}={show(v)}" for k, v in sizes.items())
    parts = ", ".join(f"{k} {format_bytes(v)}" for k, v in estimate.items())
    raise ValueError(f"{named}: this run would need about {format_bytes(total)} ({parts}; "
                     f"parameters count 4 copies: weights, gradients, optimiser state), over "
                     f"the limit of {format_bytes(MAX_MEMORY_BYTES)}; use smaller sizes")
