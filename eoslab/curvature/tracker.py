"""Curvature of your own model, recorded from your own training loop.

:func:`track` returns a :class:`Tracker`; call :meth:`Tracker.step` after each
``optimizer.step()``.  Every ``every`` steps it records a row at the current weights
:math:`\\theta_t`, for the full-batch loss :math:`L(\\theta) = \\ell(f_\\theta(x), y)` on the
``(x, y)`` given to :func:`track`:

* ``loss`` (and ``acc`` for integer class labels);
* ``sharpness`` :math:`\\lambda_{\\max}(\\nabla^2 L)` and, with ``k > 1``, ``eig_2`` ...
  ``eig_k`` (Lanczos, warm-started from the previous row);
* for Adam, AdamW and RMSprop ``precond_sharpness`` :math:`\\lambda_{\\max}(P^{-1}\\nabla^2 L)`
  with :math:`P = \\mathrm{diag}(\\sqrt{\\hat v} + \\epsilon)` read from the optimiser's state
  (Cohen et al., "Adaptive gradient methods at the edge of stability", arXiv 2207.14484);
* ``threshold``: the optimiser's stability threshold on that sharpness, :math:`2/\\eta`
  for GD, :math:`(2+2\\beta)/\\eta` for heavy ball, :math:`(2+2\\beta_1)/((1-\\beta_1)\\eta)`
  (38/η) for Adam (:func:`~eoslab.curvature.sharpness.stability_threshold`); the edge of
  stability (Cohen et al., ICLR 2021, arXiv 2103.00065) is the sharpness hovering there;
* ``trace`` :math:`\\operatorname{tr}\\nabla^2 L` by Hutch++ with fixed seeded probes
  (:func:`~eoslab.curvature.trace.hutchpp`; exact once ``trace_probes >= 3 P``);
* ``lr`` and ``hvps`` (Hessian-vector products the row cost).

The Hessian is over the trainable parameters the optimiser updates, computed through
:class:`~eoslab.curvature.objective.Objective` (``torch.func.functional_call`` on a
parameter dict): the model, its parameters and its buffers are never changed.  BatchNorm
follows the model's mode at each row: in train mode the loss and Hessian use batch
statistics of ``(x, y)`` as one batch, on copies of the running buffers.

A loss that is non-finite or above ``divergence_factor`` times the first recorded loss
marks the run as diverged: the row is kept, :attr:`Tracker.diverged` is ``(step, loss)``
and no more curvature is computed.

Displayed in Jupyter (last expression of a cell, or :meth:`Tracker.show`) a tracker draws
a live chart (:mod:`eoslab.ui.track_view`, imported only then); headless it keeps its rows
in :attr:`Tracker.history`.

Example:
    >>> import torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Linear(3, 1).double()
    >>> x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> tracker = track(model, "mse", x, y, every=2)
    >>> for _ in range(4):
    ...     opt.zero_grad(); get_loss("mse")(model(x), y).backward(); opt.step()
    ...     _ = tracker.step(opt)
    >>> [row["step"] for row in tracker.history], tracker.history[-1]["threshold"]
    ([2, 4], 20.0)
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable

import torch
from torch import nn

from eoslab.core.losses import LOSS_NAMES, Loss, get_loss
from eoslab.core.steps import DivergenceWatch
from eoslab.curvature.eigen import top_eigen
from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.objective import Objective
from eoslab.curvature.sharpness import (
    PreconditionedOperator,
    _unwrap,
    adaptive_preconditioner,
    stability_threshold,
)
from eoslab.curvature.trace import hutchpp

__all__ = ["Tracker", "as_loss", "threshold_label", "track"]

_ADAPTIVE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop)


def as_loss(loss) -> Loss:
    """A :class:`~eoslab.core.losses.Loss` from a name, a ``Loss`` or a torch callable.

    A callable ``(output, target) -> scalar`` (``nn.CrossEntropyLoss()``, ``F.mse_loss``)
    should be a mean over examples; it is always evaluated on the whole ``(x, y)`` at once
    unless a ``chunk_size`` is asked for.
    """
    if isinstance(loss, (str, Loss)):
        return get_loss(loss)
    if callable(loss):
        name = getattr(loss, "__name__", type(loss).__name__)
        return Loss(name, loss)
    raise ValueError(f"loss={loss!r} is not allowed; use one of {', '.join(LOSS_NAMES)}, a "
                     "Loss, or a callable (output, target) -> scalar such as "
                     "nn.CrossEntropyLoss()")


def threshold_label(optimizer) -> str | None:
    """The formula of ``optimizer``'s stability threshold, for legends.

    >>> threshold_label(torch.optim.Adam([torch.zeros(1)], lr=1e-3))
    '38/η'
    >>> threshold_label(torch.optim.SGD([torch.zeros(1)], lr=0.1, momentum=0.9))
    '(2+2β)/η'
    """
    if optimizer is None:
        return None
    opt = _unwrap(optimizer)
    group = opt.param_groups[0]
    if isinstance(opt, (torch.optim.Adam, torch.optim.AdamW)):
        beta = group["betas"][0]
        return f"{(2 + 2 * beta) / (1 - beta):.3g}/η"
    beta = group.get("momentum", 0.0)
    if isinstance(opt, torch.optim.SGD) and beta and group.get("nesterov"):
        return "(2+2β)/((1+2β)η)"
    if isinstance(opt, (torch.optim.SGD, torch.optim.RMSprop)):
        return "(2+2β)/η" if beta else "2/η"
    return None


def _int_at_least(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} is not allowed; use an integer >= {low}")
    return value


def _clean(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


class Tracker:
    """Sharpness, preconditioned sharpness, threshold, trace and loss of a training loop.

    Args:
        model: the ``nn.Module`` being trained.
        loss: a name (``"mse"``, ``"ce"`` ..., see :func:`eoslab.get_loss`), a ``Loss`` or a
            torch callable ``(output, target) -> scalar``.
        x, y: the data the loss (and its Hessian) is measured on, as one batch.
        every: record a row every ``every`` calls of :meth:`step`.
        k: top eigenvalues of the Hessian to record (``sharpness``, ``eig_2`` ...).
        trace_probes: Hessian-vector products of the Hutch++ trace (``>= 3``), ``None``
            for no trace.
        tol: Lanczos relative residual, a bound on the relative error of the eigenvalues.
        train_mode: BatchNorm with batch statistics (True) or running statistics (False);
            ``None`` follows ``model.training`` at each row.
        chunk_size: examples per forward pass (``None``: all at once).
        divergence_factor: a loss above this multiple of the first recorded one diverged.
        seed: seed of the Lanczos start vector and of the trace probes.

    Attributes:
        history: the recorded rows (dicts), oldest first.
        diverged: ``(step, loss)`` of the divergent row, else ``None``.
        steps: calls of :meth:`step` so far.
    """

    def __init__(self, model: nn.Module, loss, x: torch.Tensor, y: torch.Tensor, *,
                 every: int = 20, k: int = 1, trace_probes: int | None = 30,
                 tol: float = 1e-3, train_mode: bool | None = None,
                 chunk_size: int | None = None, divergence_factor: float = 1e3,
                 seed: int = 0):
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.every = _int_at_least("every", every, 1)
        self.k = _int_at_least("k", k, 1)
        if trace_probes is not None:
            _int_at_least("trace_probes", trace_probes, 3)
        if not (isinstance(tol, (int, float)) and not isinstance(tol, bool)
                and math.isfinite(tol) and 0 < tol < 1):
            raise ValueError(f"tol={tol!r} is not allowed; use a number in (0, 1)")
        if train_mode is not None and not isinstance(train_mode, bool):
            raise ValueError(f"train_mode={train_mode!r} is not allowed; use True, False or "
                             "None (follow model.training)")
        if not (isinstance(divergence_factor, (int, float)) and divergence_factor > 1):
            raise ValueError(f"divergence_factor={divergence_factor!r} is not allowed; use a "
                             "number > 1")
        if chunk_size is not None:
            _int_at_least("chunk_size", chunk_size, 1)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if trainable == 0:
            raise ValueError("the model has no trainable parameters (requires_grad=True); "
                             "there is no Hessian to track")
        if self.k > trainable:
            raise ValueError(f"k={k!r} is not allowed; the model has {trainable} trainable "
                             f"parameters, so use an integer in [1, {trainable}]")
        self.model, self.loss = model, as_loss(loss)
        self.trace_probes, self.tol, self.train_mode = trace_probes, float(tol), train_mode
        self.chunk_size, self.seed = chunk_size, seed
        self.x, self.y = x, y
        self._objectives: dict = {}
        self._objective(bool(model.training if train_mode is None else train_mode), None)
        self._watch = DivergenceWatch(float(divergence_factor))
        self._warm: dict[str, torch.Tensor] = {}
        self._listeners: list[Callable[[Tracker], None]] = []
        self._view = None
        self.history: list[dict] = []
        self.diverged: tuple[int, float] | None = None
        self.steps = 0
        self.optimizer_name: str | None = None
        self.threshold_name: str | None = None

    # -- the objective ------------------------------------------------------------------
    def _objective(self, train_mode: bool, names: tuple[str, ...] | None) -> Objective:
        """The loss as a pure function, cached per BatchNorm mode and parameter block."""
        key = (train_mode, names)
        if key not in self._objectives:
            base = next(iter(self._objectives.values()), None)
            self._objectives[key] = (
                Objective(self.model, self.loss, self.x, self.y, chunk_size=self.chunk_size,
                          train_mode=train_mode, names=names) if base is None
                else dataclasses.replace(base, train_mode=train_mode, names=names))
        return self._objectives[key]

    def _names(self, optimizer) -> tuple[str, ...] | None:
        """The trainable parameters ``optimizer`` updates (``None``: all of them)."""
        if optimizer is None:
            return None
        held = {id(p) for g in _unwrap(optimizer).param_groups for p in g["params"]}
        every = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        names = tuple(n for n, p in every if id(p) in held)
        if not names:
            raise ValueError("the optimizer holds none of the model's trainable parameters; "
                             "pass the optimizer built on model.parameters()")
        return None if len(names) == len(every) else names

    # -- the loop -----------------------------------------------------------------------
    def step(self, optimizer: torch.optim.Optimizer | None = None) -> dict | None:
        """Count one optimiser step; every ``every`` steps record and return a row.

        Call it after ``optimizer.step()``; ``optimizer`` gives the threshold and, for
        Adam/AdamW/RMSprop, the preconditioner.  After a divergence it only counts.
        """
        if optimizer is not None and not isinstance(_unwrap(optimizer), torch.optim.Optimizer):
            raise ValueError(f"optimizer must be a torch.optim.Optimizer, got "
                             f"{type(optimizer).__name__}")
        self.steps += 1
        if self.steps % self.every or self.diverged is not None:
            return None
        return self.record(optimizer)

    def record(self, optimizer: torch.optim.Optimizer | None = None) -> dict | None:
        """Record a row at the current step now (e.g. at step 0, before training)."""
        if self.diverged is not None:
            return None
        train = bool(self.model.training if self.train_mode is None else self.train_mode)
        objective = self._objective(train, self._names(optimizer))
        params = objective.params()
        metrics = objective.metrics(params)
        row = {"step": self.steps, "loss": metrics["loss"]}
        if not self.y.is_floating_point() and self.y.dim() == 1 and "acc" in metrics:
            row["acc"] = metrics["acc"]
        if optimizer is not None:
            row["lr"] = float(_unwrap(optimizer).param_groups[0]["lr"])
        self._watch.add(self.steps, torch.tensor(row["loss"], dtype=torch.float64))
        bad = self._watch.check()
        if bad is not None:
            self.diverged = bad
            self._append(row)
            return row
        row.update(self._curvature(objective, params, optimizer))
        self._append(row)
        return row

    def _solve(self, key: str, op, k: int):
        init = self._warm.get(key)
        if init is not None and init.shape[0] != op.shape[0]:
            init = None
        res = top_eigen(op, k, tol=self.tol, init=init, seed=self.seed)
        self._warm[key] = res.vectors
        return res

    def _curvature(self, objective: Objective, params, optimizer) -> dict:
        op = HessianOperator(objective, params)
        res = self._solve("top", op, min(self.k, op.shape[0]))
        out = {"sharpness": float(res.values[0])}
        out.update({f"eig_{i + 1}": float(v) for i, v in enumerate(res.values[1:], 1)})
        if optimizer is not None:
            self.optimizer_name = type(_unwrap(optimizer)).__name__
            diag = adaptive_preconditioner(optimizer, self.model, objective.param_names)
            if diag is not None:
                pre = self._solve("precond", PreconditionedOperator(op, diag), 1)
                out["precond_sharpness"] = float(pre.values[0])
            try:
                out["threshold"] = stability_threshold(optimizer)
                self.threshold_name = threshold_label(optimizer)
            except ValueError:  # an optimiser without a known threshold (LBFGS...)
                out["threshold"] = None
        if self.trace_probes is not None:
            out["trace"] = hutchpp(op, m=self.trace_probes, seed=self.seed).estimate
        out["hvps"] = op.hvps
        return out

    def _append(self, row: dict) -> None:
        self.history.append(row)
        for listener in list(self._listeners):
            listener(self)

    def subscribe(self, listener: Callable[[Tracker], None]) -> None:
        """Call ``listener(tracker)`` after each recorded row (the live view uses this)."""
        self._listeners.append(listener)

    # -- headless output ----------------------------------------------------------------
    @property
    def adaptive(self) -> bool:
        """Whether the rows carry a preconditioned sharpness (Adam, AdamW, RMSprop)."""
        return any("precond_sharpness" in row for row in self.history)

    def rows(self) -> list[dict]:
        """Copies of the recorded rows, non-finite numbers as ``None``."""
        return [{k: _clean(v) for k, v in row.items()} for row in self.history]

    def to_json(self) -> str:
        """The rows and the run's facts as a JSON document (no NaN: ``null``)."""
        return json.dumps({
            "every": self.every, "steps": self.steps, "optimizer": self.optimizer_name,
            "threshold": self.threshold_name, "loss": self.loss.name,
            "diverged": [self.diverged[0], _clean(self.diverged[1])] if self.diverged else None,
            "rows": self.rows()}, allow_nan=False)

    # -- display ------------------------------------------------------------------------
    def view(self):
        """The live chart (:class:`eoslab.ui.track_view.TrackView`), built on first use."""
        if self._view is None:
            from eoslab.ui.track_view import TrackView

            self._view = TrackView(self)
        return self._view

    def show(self):
        """Display the live chart in Jupyter and return its view."""
        from IPython.display import display

        view = self.view()
        display(view.widget)
        return view

    def _repr_mimebundle_(self, **kwargs):
        return self.view().widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        state = f"diverged at step {self.diverged[0]}" if self.diverged else "running"
        return (f"Tracker(every={self.every}, steps={self.steps}, rows={len(self.history)}, "
                f"{state})")


def track(model: nn.Module, loss, x: torch.Tensor, y: torch.Tensor, every: int = 20,
          k: int = 1, **options) -> Tracker:
    """A :class:`Tracker` of ``model`` on ``(x, y)`` under ``loss``, a row every ``every`` steps.

    ``options`` are :class:`Tracker`'s (``trace_probes``, ``tol``, ``train_mode``,
    ``chunk_size``, ``divergence_factor``, ``seed``).  Typical use::

        tracker = eoslab.track(model, nn.CrossEntropyLoss(), x, y, every=20)
        for step in range(steps):
            optimizer.zero_grad(); loss_fn(model(x), y).backward(); optimizer.step()
            tracker.step(optimizer)
        tracker.history[-1]   # {'step': ..., 'loss': ..., 'sharpness': ..., 'threshold': ...}
    """
    return Tracker(model, loss, x, y, every=every, k=k, **options)
