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

Inputs are checked up front, and a bad one raises ``ValueError`` naming the tensor: ``x``
and ``y`` must be tensors with as many examples, finite, on the model's device, ``x`` (and
a floating ``y``) in the dtype of the model's parameters, and ``x`` must fit the model
(one forward pass on two examples is tried at construction); a parameter dict must hold
exactly the probed names with the model's shapes, dtype and device
(:meth:`Objective.check_params`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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
    _probed: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(self.model).__name__}")
        self.loss = get_loss(self.loss)
        every = dict(self.model.named_parameters())
        if self.names is not None:
            unknown = [n for n in self.names if n not in every]
            if unknown:
                raise ValueError(f"unknown parameter names {unknown}; allowed: {list(every)}")
        self._frozen = {n: p.detach() for n, p in every.items() if n not in self.param_names}
        self._probed = {n: every[n] for n in self.param_names}
        self.check_data(self.x, self.y)

    def _reference(self) -> torch.Tensor | None:
        """A floating parameter of the model: the dtype and device the data must have."""
        return next((p for p in self.model.parameters() if p.is_floating_point()), None)

    def check_data(self, x, y, names: tuple[str, str] = ("x", "y")) -> None:
        """Raise ``ValueError`` naming ``x`` or ``y`` unless they fit the model and the loss.

        Checks that both are tensors with the same number (> 0) of examples, finite, on the
        model's device, ``x`` (and a floating ``y``) in the parameters' dtype, class labels
        in range, and that a forward pass and the loss run on their first two examples.
        """
        for t, name in zip((x, y), names):
            if not torch.is_tensor(t):
                raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.dim() == 0:
                raise ValueError(f"{name} must have a leading dimension of examples, got a "
                                 "scalar")
        if x.shape[0] == 0:
            raise ValueError(f"the data is empty ({names[0]} has 0 examples); a loss needs at "
                             "least one example")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{names[0]} has {x.shape[0]} examples but {names[1]} has "
                             f"{y.shape[0]}")
        ref = self._reference()
        for t, name in zip((x, y), names):
            if ref is not None and t.device != ref.device:
                raise ValueError(f"{name} is on {t.device} but the model is on {ref.device}; "
                                 f"move it with {name}.to({str(ref.device)!r})")
            if ref is not None and (t is x or t.is_floating_point()) and t.dtype != ref.dtype:
                raise ValueError(f"{name} has dtype {t.dtype} but the model's parameters are "
                                 f"{ref.dtype}; convert it with {name}.to({ref.dtype})")
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad = int((~torch.isfinite(t)).sum())
                raise ValueError(f"{name} holds {bad} NaN or infinite values; the loss is "
                                 "only defined on finite data")
        self._try_forward(x, y, names)

    def _try_forward(self, x, y, names) -> None:
        current = {n: p.detach() for n, p in self._probed.items()}
        with torch.no_grad():
            try:
                out = self.forward(current, x[:2])
            except RuntimeError as err:
                raise ValueError(f"{names[0]} of shape {tuple(x.shape)} does not fit the model: "
                                 f"{str(err).splitlines()[0]}") from None
            if not y.is_floating_point() and out.dim() == 2:
                low, high = int(y.min()), int(y.max())
                if low < 0 or high >= out.shape[1]:
                    raise ValueError(f"{names[1]} holds class labels in [{low}, {high}] but the "
                                     f"model has {out.shape[1]} outputs; use labels in "
                                     f"[0, {out.shape[1] - 1}]")
            try:
                self.loss.per_example_mean(out, y[:2])
            except (RuntimeError, ValueError, IndexError) as err:
                raise ValueError(f"{names[1]} of shape {tuple(y.shape)} does not fit the model's "
                                 f"outputs of shape {tuple(out.shape)} under loss "
                                 f"{self.loss.name!r}: {str(err).splitlines()[0]}") from None

    def check_params(self, params, what: str = "params", module: nn.Module | None = None
                     ) -> None:
        """Raise ``ValueError`` naming ``what`` unless it holds exactly the probed parameters.

        Each tensor must have the model's shape, dtype and device for its name.  With
        ``module`` (a part of the model, see :meth:`forward`) the probed parameters outside
        it may be left out.
        """
        if not isinstance(params, Mapping):
            raise ValueError(f"{what} must be a dict of tensors keyed by parameter name, got "
                             f"{type(params).__name__}")
        probed = self._probed
        if params.keys() != probed.keys():
            own = None if module is None else {n for n, _ in module.named_parameters()}
            missing = [n for n in probed if n not in params and (own is None or n in own)]
            unknown = [n for n in params if n not in probed]
            if missing or unknown:
                raise ValueError(f"{what} does not hold the objective's parameters: missing "
                                 f"{missing}, unknown {unknown}; expected exactly "
                                 f"{list(probed)}")
        for n, p in params.items():
            ref = probed[n]
            if not torch.is_tensor(p):
                raise ValueError(f"{what}[{n!r}] must be a tensor, got {type(p).__name__}")
            if p.shape != ref.shape:
                raise ValueError(f"{what}[{n!r}] has shape {tuple(p.shape)} but the model's "
                                 f"parameter has shape {tuple(ref.shape)}")
            if p.dtype != ref.dtype:
                raise ValueError(f"{what}[{n!r}] has dtype {p.dtype} but the model's parameter "
                                 f"is {ref.dtype}")
            if p.device != ref.device:
                raise ValueError(f"{what}[{n!r}] is on {p.device} but the model is on "
                                 f"{ref.device}")

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

        Raises:
            ValueError: ``params`` is not a dict of the probed parameters
                (:meth:`check_params`).
        """
        self.check_params(params, module=module)
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
        if x is not None or y is not None:
            x = self.x if x is None else x
            y = self.y if y is None else y
            self.check_data(x, y)
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
