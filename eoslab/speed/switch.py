"""The one switch over every speed layer: ``EOSLAB_SPEED``.

The engines (:func:`eoslab.core.train.fit`, :func:`eoslab.core.sweep.fit_batched`,
:func:`eoslab.geometry.landscape.evaluate_points` and what is built on them) apply the
speed layers of :mod:`eoslab.speed` only through this module, and only while
:func:`enabled` is true.  It is true unless the environment variable ``EOSLAB_SPEED`` is
one of ``0``, ``false``, ``off``, ``no`` (any case); the variable is read at every call,
so a test or a notebook can flip it between runs.  With the switch off every engine runs
the plain PyTorch modules it was given, and the results agree with the switch on to
floating-point rounding (the layers compute the same functions).

What the switch governs:

* :func:`accelerated`: for the duration of an engine call, the ``nn.Tanh`` modules of the
  caller's model compute :func:`eoslab.speed.fast_tanh.tanh`, and freed heap memory is
  kept for reuse (:func:`eoslab.speed.heap.retained_heap`);
* :func:`fast_tanh_mode`: ``tanh`` inside ``torch.func`` transforms (the batched points of
  a landscape);
* :func:`stacked_forward`: the feature-major forward of stacked MLP copies in a sweep;
* :func:`split_linear_head`: the first layer once per direction in a landscape;
* :func:`eoslab.speed.threads.single_thread`: intra-op thread pinning.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh())
    >>> act = net[1]
    >>> with accelerated(net):
    ...     inside = type(net[1])
    >>> inside is (fast_tanh.Tanh if enabled() else torch.nn.Tanh)
    True
    >>> net[1] is act and type(act) is torch.nn.Tanh
    True
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from torch import nn

from eoslab.speed import fast_tanh, heap, linear_head, stacked_mlp

__all__ = ["ENV_VAR", "accelerated", "enabled", "fast_tanh_mode", "split_linear_head",
           "stacked_forward"]

#: the environment variable that turns every speed layer off
ENV_VAR = "EOSLAB_SPEED"
_OFF = ("0", "false", "off", "no")


def enabled() -> bool:
    """Whether the engines apply the speed layers (``EOSLAB_SPEED`` not ``0/false/off/no``)."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in _OFF


@contextlib.contextmanager
def accelerated(*modules: nn.Module) -> Iterator[None]:
    """Within the block, the speed layers apply to ``modules`` (nothing when switched off).

    Every submodule whose type is exactly ``nn.Tanh`` computes
    :func:`eoslab.speed.fast_tanh.tanh` (:math:`2\\sigma(2x) - 1` on large CPU tensors,
    ``torch.tanh`` elsewhere) and glibc keeps freed heap memory
    (:func:`eoslab.speed.heap.retained_heap`).  The modules stay the same objects: only
    the class of each ``nn.Tanh`` instance is changed to its subclass
    :class:`eoslab.speed.fast_tanh.Tanh` (same state, same hooks) and changed back on
    exit, exceptions included.  Nested blocks over the same modules leave the restoring
    to the outermost one.
    """
    if not enabled():
        yield
        return
    swapped = []
    for root in modules:
        for module in root.modules():
            if type(module) is nn.Tanh:
                module.__class__ = fast_tanh.Tanh
                swapped.append(module)
    try:
        with heap.retained_heap():
            yield
    finally:
        for module in swapped:
            module.__class__ = nn.Tanh


def fast_tanh_mode() -> contextlib.AbstractContextManager:
    """:class:`eoslab.speed.fast_tanh.FastTanh`, or a null context when switched off.

    Within it ``tanh`` of every CPU tensor is the fused identity, inside ``torch.func``
    transforms too.
    """
    if not enabled():
        return contextlib.nullcontext()
    return fast_tanh.FastTanh()


def stacked_forward(model: nn.Module, input_shape: tuple[int, ...]):
    """:func:`eoslab.speed.stacked_mlp.stacked_forward`, or ``None`` when switched off."""
    if not enabled():
        return None
    return stacked_mlp.stacked_forward(model, input_shape)


def split_linear_head(objective):
    """:func:`eoslab.speed.linear_head.split_linear_head`, or ``None`` when switched off."""
    if not enabled():
        return None
    return linear_head.split_linear_head(objective)
