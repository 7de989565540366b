"""Sharpness tracked live in the training loop, preconditioned sharpness and stability thresholds.

The sharpness is :math:`S = \\lambda_{\\max}(\\nabla^2 L)`.  Gradient descent with step
size :math:`\\eta` on a quadratic is stable iff :math:`S < 2/\\eta`; Cohen et al. (ICLR 2021,
arXiv 2103.00065) found that on neural nets :math:`S` first rises (progressive
sharpening) and then hovers at :math:`2/\\eta` (the edge of stability).  The thresholds of
other optimisers, on a quadratic with curvature :math:`\\lambda`:

================================  ==========================================================
GD                                :math:`\\lambda < 2/\\eta`
heavy ball (PyTorch convention)   :math:`\\lambda < (2 + 2\\beta)/\\eta`
Nesterov (PyTorch convention)     :math:`\\lambda < (2 + 2\\beta)/((1 + 2\\beta)\\eta)`
Adam / RMSProp, frozen P          :math:`\\lambda_{\\max}(P^{-1} H)
                                  < (2 + 2\\beta_1)/((1-\\beta_1)\\eta)`
                                  (38/η for :math:`\\beta_1 = 0.9`; 2/η for RMSProp)
================================  ==========================================================

For adaptive methods the relevant curvature is the *preconditioned* sharpness
:math:`\\lambda_{\\max}(P^{-1} H)` with :math:`P = \\mathrm{diag}(\\sqrt{\\hat v} + \\epsilon)`,
:math:`\\hat v = v / (1 - \\beta_2^t)` (Cohen et al., "Adaptive gradient methods at the edge of
stability", arXiv 2207.14484); it equals :math:`\\lambda_{\\max}(D H D)`,
:math:`D = P^{-1/2}`, a symmetric problem Lanczos solves with the same products.

:class:`SharpnessProbe` plugs into :func:`eoslab.core.train.fit` and warm-starts each estimate
from the previous eigenvectors.

Example:
    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1)], lr=0.1, momentum=0.9)
    >>> round(stability_threshold(opt), 6)   # (2 + 2*0.9) / 0.1
    38.0
"""

from __future__ import annotations

import dataclasses
import math

import torch

from eoslab.curvature.eigen import bottom_eigen, top_eigen
from eoslab.curvature.hessian import HessianOperator, restrict

__all__ = [
    "PreconditionedOperator",
    "SharpnessProbe",
    "adaptive_preconditioner",
    "precond_sharpness",
    "stability_threshold",
    "threshold",
]


def threshold(kind: str, lr: float, beta: float = 0.0) -> float:
    """The stability threshold on the (preconditioned) sharpness for optimiser ``kind``.

    ``kind``: ``"gd"``, ``"momentum"`` (heavy ball, ``beta`` its momentum), ``"nesterov"``,
    ``"adam"`` (``beta`` is :math:`\\beta_1`) or ``"rmsprop"``.

    >>> round(threshold("adam", 1.0, 0.9), 9)
    38.0
    """
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} is not allowed; use a finite number > 0")
    if not 0 <= beta < 1:
        raise ValueError(f"beta={beta!r} is not allowed; use a number in [0, 1)")
    if kind in ("gd", "rmsprop"):
        return 2.0 / lr if kind == "gd" or beta == 0 else (2 + 2 * beta) / lr
    if kind == "momentum":
        return (2 + 2 * beta) / lr
    if kind == "nesterov":
        return (2 + 2 * beta) / ((1 + 2 * beta) * lr)
    if kind == "adam":
        return (2 + 2 * beta) / ((1 - beta) * lr)
    raise ValueError(f"kind={kind!r} is not allowed; use gd, momentum, nesterov, adam, rmsprop")


def _unwrap(optimizer):
    """The optimiser a wrapper (SAM's ``base``) steps with."""
    base = getattr(optimizer, "base", None)
    return _unwrap(base) if isinstance(base, torch.optim.Optimizer) else optimizer


def stability_threshold(optimizer: torch.optim.Optimizer) -> float:
    """:func:`threshold` for a ``torch.optim`` optimiser, read from its first param group."""
    optimizer = _unwrap(optimizer)
    group = optimizer.param_groups[0]
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return threshold("adam", group["lr"], group["betas"][0])
    if isinstance(optimizer, torch.optim.RMSprop):
        return threshold("rmsprop", group["lr"], group.get("momentum", 0.0))
    if isinstance(optimizer, torch.optim.SGD):
        beta = group.get("momentum", 0.0)
        if beta and group.get("nesterov"):
            return threshold("nesterov", group["lr"], beta)
        return threshold("momentum" if beta else "gd", group["lr"], beta)
    raise ValueError(f"no stability threshold known for {type(optimizer).__name__}; "
                     "supported: SGD (GD, heavy ball, Nesterov), Adam, AdamW, RMSprop")


def adaptive_preconditioner(optimizer: torch.optim.Optimizer, model: torch.nn.Module,
                            names) -> torch.Tensor | None:
    """The flat diagonal :math:`P = \\sqrt{\\hat v} + \\epsilon` of Adam/AdamW/RMSprop's state.

    Adam: :math:`\\hat v = v/(1-\\beta_2^t)` (``max_exp_avg_sq`` with amsgrad); RMSprop:
    :math:`v` (minus the squared gradient average when ``centered``).  Returns ``None``
    for other optimisers and before the first step.
    """
    optimizer = _unwrap(optimizer)
    if not isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop)):
        return None
    params = dict(model.named_parameters())
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    parts = []
    for name in names:
        p = params[name]
        state, group = optimizer.state.get(p, {}), group_of.get(id(p))
        if group is None or not state:
            return None
        if isinstance(optimizer, torch.optim.RMSprop):
            v = state["square_avg"]
            if group.get("centered"):
                v = v - state["grad_avg"] ** 2
        else:
            v = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
            v = v / (1 - group["betas"][1] ** float(state["step"]))
        parts.append((v.sqrt() + group["eps"]).reshape(-1))
    return torch.cat(parts).detach()


class PreconditionedOperator:
    """:math:`D H D` with :math:`D = P^{-1/2}`: same spectrum as :math:`P^{-1} H`, symmetric."""

    def __init__(self, op, diagonal: torch.Tensor):
        if diagonal.shape != (op.shape[0],) or not bool((diagonal > 0).all()):
            raise ValueError(f"the preconditioner must be {op.shape[0]} positive numbers, got "
                             f"shape {tuple(diagonal.shape)}")
        self.op, self.shape, self.dtype, self.device = op, op.shape, op.dtype, op.device
        self.scale = diagonal.to(device=op.device, dtype=op.dtype).rsqrt()

    @property
    def hvps(self) -> int:
        return self.op.hvps

    def matvec(self, v):
        return self.scale * self.op.matvec(self.scale * v)

    def matmat(self, V):
        return self.scale[:, None] * self.op.matmat(self.scale[:, None] * V)


def precond_sharpness(op, diagonal: torch.Tensor, k: int = 1, **options):
    """:math:`\\lambda_{\\max}(P^{-1} H)` (and the next ``k-1``) as an :class:`EigenResult`.

    The eigenvectors returned are those of :math:`D H D`; :math:`D u` are the right
    eigenvectors of :math:`P^{-1} H`.
    """
    return top_eigen(PreconditionedOperator(op, diagonal), k, **options)


class SharpnessProbe:
    """Top Hessian eigenvalues during :func:`eoslab.core.train.fit`, warm-started.

    Args:
        every: run at steps divisible by this.
        k: eigenvalues to report: ``sharpness`` then ``eig_2`` ... ``eig_k``.
        tol: relative residual of the Lanczos solver; it bounds the relative error of
            the eigenvalues (typically far smaller, about its square over the gap).
        max_iter: Krylov dimension cap.
        negative: also report the ``negative`` most negative eigenvalues (``eig_min``,
            ``eig_min_2``...).
        precond: for Adam/AdamW/RMSprop also report ``precond_sharpness``
            :math:`\\lambda_{\\max}(P^{-1} H)`.
        include: restrict to a block of parameters (see :func:`eoslab.curvature.hessian.restrict`).
        train_mode: BatchNorm in train mode (batch statistics) instead of the loop's
            objective's mode (eval, running statistics); ``None`` keeps it.
        chunk_size: examples per forward pass for the products (``None`` keeps the loop's).
        seed: seed of the first (cold) start vector.

    The row gets ``sharpness``, ``eig_2``.., ``hvps`` (products used), and optionally
    ``precond_sharpness`` and ``eig_min``.
    """

    def __init__(self, every: int, k: int = 1, *, tol: float = 1e-2, max_iter: int | None = None,
                 negative: int = 0, precond: bool = True, include=None,
                 train_mode: bool | None = None, chunk_size: int | None = None, seed: int = 0):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} is not allowed; use an integer >= 1")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k={k!r} is not allowed; use an integer >= 1")
        if isinstance(negative, bool) or not isinstance(negative, int) or negative < 0:
            raise ValueError(f"negative={negative!r} is not allowed; use an integer >= 0")
        self.every, self.k, self.tol, self.max_iter = every, k, tol, max_iter
        self.negative, self.precond, self.include = negative, precond, include
        self.train_mode, self.chunk_size, self.seed = train_mode, chunk_size, seed
        self._warm: dict[str, torch.Tensor] = {}

    def objective(self, objective):
        """The loop's objective with this probe's block, BatchNorm mode and chunking."""
        changes = {}
        if self.train_mode is not None:
            changes["train_mode"] = self.train_mode
        if self.chunk_size is not None:
            changes["chunk_size"] = self.chunk_size
        if changes:
            objective = dataclasses.replace(objective, **changes)
        return restrict(objective, self.include) if self.include is not None else objective

    def _solve(self, key, solver, op, k):
        init = self._warm.get(key)
        if init is not None and init.shape[0] != op.shape[0]:
            init = None
        res = solver(op, k, tol=self.tol, max_iter=self.max_iter, init=init, seed=self.seed)
        self._warm[key] = res.vectors
        return res

    def __call__(self, ctx) -> dict:
        objective = self.objective(ctx.objective)
        op = HessianOperator(objective)
        res = self._solve("top", top_eigen, op, self.k)
        row = {"sharpness": float(res.values[0])}
        row.update({f"eig_{i + 1}": float(v) for i, v in enumerate(res.values[1:], 1)})
        if self.negative:
            low = self._solve("low", bottom_eigen, op, self.negative)
            row["eig_min"] = float(low.values[0])
            row.update({f"eig_min_{i + 1}": float(v) for i, v in enumerate(low.values[1:], 1)})
        if self.precond:
            diag = adaptive_preconditioner(ctx.optimizer, ctx.model, objective.param_names)
            if diag is not None:
                pre = self._solve("precond", top_eigen, PreconditionedOperator(op, diag), 1)
                row["precond_sharpness"] = float(pre.values[0])
        row["hvps"] = op.hvps
        return row
