"""The training objective as a function of a parameter dict.

Probes (Hessians, traces, spectra) and landscapes (slices, planes, curves) all need
:math:`L(\\theta)` for parameters :math:`\\theta` that are *not* the model's own, e.g. a
point on a plane or a perturbed copy.  :class:`Objective` provides it through
``torch.func.functional_call``, so the model is never mutated and any ``nn.Module`` works
without rewriting its layers.

The full-batch loss is accumulated over chunks of the data,

.. math::

    L(\\theta) = \\mathrm{outer}\\Big(\\sum_c \\frac{n_c}{n}\\, \\bar\\ell_c(\\theta)\\Big),

where :math:`\\bar\\ell_c` is the mean loss on chunk :math:`c` of size :math:`n_c`.  Without
BatchNorm this is exactly the unchunked loss; with BatchNorm in train mode each chunk uses
its own batch statistics (as a large batch split over devices would).

BatchNorm mode: ``train_mode=False`` (the default) evaluates with running statistics
(``model.eval()`` semantics); ``train_mode=True`` uses batch statistics and never updates
the running buffers (the buffers given to ``functional_call`` are throw-away copies).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.func import functional_call

from eoslab.core.losses import Loss, accuracy, get_loss
from eoslab.core.params import Params

__all__ = ["Objective", "iter_chunks", "trainable_params"]

def trainable_params(model: nn.Module) -> Params:
    """Detached copies of the model's trainable parameters, keyed by name."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def iter_chunks(x: torch.Tensor, y: torch.Tensor, chunk_size: int | None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
    """Yield ``(x_chunk, y_chunk, n_chunk / n)`` covering the data once, in order."""
    n = x.shape[0]
    if n == 0:
        raise ValueError("the data is empty (0 examples); a loss needs at least one example")
    size = n if not chunk_size else int(chunk_size)
    if size < 1:
        raise ValueError(f"chunk_size={chunk_size!r} is not allowed; use a positive integer "
                         "or None for the whole batch")
    for start in range(0, n, size):
        stop = min(start + size, n)
        yield x[start:stop], y[start:stop], (stop - start) / n


@dataclass
class Objective:
    """:math:`L(\\theta)` of ``model`` on ``(x, y)`` under ``loss``, as a pure function.

    Attributes:
        model: any module; only its structure and buffers are used.
        loss: a :class:`~eoslab.core.losses.Loss` or its name.
        x, y: the data (usually the full training set).
        chunk_size: examples per forward pass (``None``: all at once).
        train_mode: BatchNorm with batch statistics (True) or running statistics (False).
        names: restrict the parameters to these names (a block of the net); others are
            held at the model's current values.
    """

    model: nn.Module
    loss: Loss | str
    x: torch.Tensor
    y: torch.Tensor
    chunk_size: int | None = None
    train_mode: bool = False
    names: tuple[str, ...] | None = None
    _frozen: Params = field(init=False, repr=False)

    def __post_init__(self):
        self.loss = get_loss(self.loss)
        if self.x.shape[0] == 0:
            raise ValueError("the data is empty (0 examples); a loss needs at least one example")
        if self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"x has {self.x.shape[0]} examples but y has {self.y.shape[0]}")
        every = dict(self.model.named_parameters())
        if self.names is not None:
            unknown = [n for n in self.names if n not in every]
            if unknown:
                raise ValueError(f"unknown parameter names {unknown}; allowed: {list(every)}")
        self._frozen = {n: p.detach() for n, p in every.items() if n not in self.param_names}

    @property
    def param_names(self) -> tuple[str, ...]:
        if self.names is not None:
            return tuple(self.names)
        return tuple(n for n, p in self.model.named_parameters() if p.requires_grad)

    def params(self) -> Params:
        """Detached copies of the model's current values of the probed parameters."""
        every = dict(self.model.named_parameters())
        return {n: every[n].detach().clone() for n in self.param_names}

    def _buffers(self) -> Params:
        bufs = dict(self.model.named_buffers())
        return {n: b.clone() for n, b in bufs.items()} if self.train_mode else bufs

    def forward(self, params: Params, x: torch.Tensor, module: nn.Module | None = None
                ) -> torch.Tensor:
        """Model outputs at ``params`` (merged with the frozen ones) on inputs ``x``.

        ``module``: a part of the model that shares its submodules and their names (a slice
        of an ``nn.Sequential``); only the entries it holds are passed to it.
        """
        was_training = self.model.training
        self.model.train(self.train_mode)
        values, buffers = {**self._frozen, **params}, self._buffers()
        if module is not None:
            own = {n for n, _ in module.named_parameters()}
            values = {n: v for n, v in values.items() if n in own}
            own = {n for n, _ in module.named_buffers()}
            buffers = {n: v for n, v in buffers.items() if n in own}
        try:
            return functional_call(module if module is not None else self.model,
                                   (values, buffers), (x,))
        finally:
            self.model.train(was_training)

    def chunk_loss(self, params: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss on one chunk *before* the outer transform (differentiable, vmappable)."""
        return self.loss.per_example_mean(self.forward(params, x), y)

    def mean_loss(self, params: Params) -> torch.Tensor:
        """Full-batch mean loss before the outer transform, accumulated over chunks."""
        total = None
        for xc, yc, weight in iter_chunks(self.x, self.y, self.chunk_size):
            term = weight * self.chunk_loss(params, xc, yc)
            total = term if total is None else total + term
        return total

    def __call__(self, params: Params) -> torch.Tensor:
        """:math:`L(\\theta)`, the full-batch loss including the outer transform."""
        return self.loss.finish(self.mean_loss(params))

    @torch.no_grad()
    def metrics(self, params: Params, x: torch.Tensor | None = None,
                y: torch.Tensor | None = None) -> dict[str, float]:
        """Loss (and accuracy for classification) at ``params`` on ``(x, y)``.

        ``x`` and ``y`` default to the objective's own data.
        """
        x = self.x if x is None else x
        y = self.y if y is None else y
        loss_sum, acc_sum = 0.0, 0.0
        classify = y.dim() == 1 and not y.is_floating_point() or (
            y.dim() == 2 and y.shape[1] > 1)
        for xc, yc, weight in iter_chunks(x, y, self.chunk_size):
            out = self.forward(params, xc)
            loss_sum += weight * float(self.loss.per_example_mean(out, yc))
            if classify:
                acc_sum += weight * float(accuracy(out, yc))
        out = {"loss": float(self.loss.finish(torch.tensor(loss_sum, dtype=torch.float64)))}
        if classify:
            out["acc"] = acc_sum
        return out
