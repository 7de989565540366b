"""Sharpness-aware minimisation as a wrapper of any ``torch.optim`` optimiser.

Foret, Kleiner, Mobahi, Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving
Generalization", ICLR 2021 (arXiv 2010.01412): step the base optimiser with the gradient
taken at the worst-case first-order perturbation of radius :math:`\\rho`,

.. math::

    \\epsilon(w) = \\rho \\frac{\\nabla L(w)}{\\lVert \\nabla L(w)\\rVert}, \\qquad
    g_{\\mathrm{SAM}} = \\nabla L(w + \\epsilon(w)).

On :math:`L = \\tfrac12 w^\\top A w` this is :math:`A w + \\rho A^2 w / \\lVert A w\\rVert`.

ASAM (Kwon, Kim, Park, Choi, ICML 2021, arXiv 2102.11600) measures the radius in the
weight-scaled norm :math:`\\lVert T_w^{-1} \\epsilon\\rVert \\le \\rho` with
:math:`T_w = \\mathrm{diag}(|w| + \\eta)`, giving
:math:`\\epsilon = \\rho\\, T_w^2 \\nabla L / \\lVert T_w \\nabla L\\rVert`.

m-sharpness (Foret et al. section 4; Andriushchenko and Flammarion, ICML 2022, arXiv
2206.06232): the batch is split into groups of ``m`` examples, each group gets its own
perturbation from its own gradient, and the step uses the mean of the groups' perturbed
gradients (weighted by group size).

Use with :func:`eoslab.core.train.fit`: ``SAM`` sets ``needs_closure = True``, so fit calls
``step(closure)`` with a :class:`~eoslab.core.train.BatchClosure`; at that moment ``.grad``
already holds :math:`\\nabla L(w)` on the step's batch and is reused (no third pass).
Outside fit, call ``loss.backward()`` first or leave the grads ``None`` (then ``step``
computes them with ``closure()``).

BatchNorm: the running statistics are updated once per step, by the unperturbed pass at
:math:`w`; the buffers of the closure's model (``closure.model`` or the ``model`` argument)
are restored after the perturbed passes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["SAM", "sam_edge", "sam_perturbation"]


def _grad_norm(tensors) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([t.norm() for t in tensors]))


@torch.no_grad()
def sam_perturbation(params, grads, rho: float, adaptive: bool = False, eta: float = 0.01
                     ) -> list[torch.Tensor]:
    """:math:`\\epsilon` for SAM (``adaptive=False``) or element-wise ASAM.

    A zero gradient gives a zero perturbation.

    >>> import torch
    >>> e = sam_perturbation([torch.zeros(2)], [torch.tensor([3.0, 4.0])], rho=0.5)
    >>> e[0].tolist()
    [0.30000001192092896, 0.4000000059604645]
    """
    params, grads = list(params), list(grads)
    if adaptive:
        scale = [p.abs() + eta for p in params]
        size = _grad_norm([s * g for s, g in zip(scale, grads)])
        factor = rho / size if float(size) > 0 else 0.0
        return [s.pow(2) * g * factor for s, g in zip(scale, grads)]
    size = _grad_norm(grads)
    factor = rho / size if float(size) > 0 else 0.0
    return [g * factor for g in grads]


def _bn_buffers(model: nn.Module | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if model is None:
        return []
    saved = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            for buf in (module.running_mean, module.running_var, module.num_batches_tracked):
                if buf is not None:
                    saved.append((buf, buf.clone()))
    return saved


class SAM(torch.optim.Optimizer):
    """SAM / ASAM / m-sharpness around ``base`` (which owns the parameters and the state).

    Args:
        base: any optimiser, e.g. ``torch.optim.SGD(model.parameters(), lr=0.1)``.
        rho: perturbation radius :math:`\\rho \\ge 0`; ``rho=0`` is exactly ``base``.
        adaptive: ASAM's scale-invariant radius with offset ``eta``.
        m: examples per perturbation group (``None``: the whole batch).
        model: whose BatchNorm buffers to protect (default: ``closure.model``).

    Attributes:
        last_perturbation_norm: :math:`\\lVert\\epsilon\\rVert` (ASAM:
            :math:`\\lVert T_w^{-1}\\epsilon\\rVert`) of the last step's (last group's)
            perturbation.
    """

    needs_closure = True

    def __init__(self, base: torch.optim.Optimizer, rho: float = 0.05, *,
                 adaptive: bool = False, eta: float = 0.01, m: int | None = None,
                 model: nn.Module | None = None):
        if not isinstance(base, torch.optim.Optimizer):
            raise ValueError(  # noqa: TRY004 - the project reports bad inputs as ValueError
                f"base={base!r} is not allowed; give a torch.optim.Optimizer")
        if isinstance(rho, bool) or not isinstance(rho, (int, float)) or not (
                math.isfinite(rho) and rho >= 0):
            raise ValueError(f"rho={rho!r} is not allowed; use a finite number >= 0")
        if not eta >= 0:
            raise ValueError(f"eta={eta!r} is not allowed; use a number >= 0")
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ValueError(f"m={m!r} is not allowed; use an integer >= 1 or None")
        self.base, self.rho, self.adaptive, self.eta, self.m = base, float(rho), adaptive, eta, m
        self.model = model
        self.last_perturbation_norm: float | None = None
        super().__init__(base.param_groups, base.defaults)
        self.param_groups, self.state, self.defaults = base.param_groups, base.state, base.defaults

    def _params(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"] if p.requires_grad]

    def _grads(self, params) -> list[torch.Tensor]:
        return [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def _ascend(self, params, grads) -> list[torch.Tensor]:
        """Move to :math:`w + \\epsilon`; return the saved :math:`w`."""
        eps = sam_perturbation(params, grads, self.rho, self.adaptive, self.eta)
        if self.adaptive:
            scaled = [e / (p.abs() + self.eta) for e, p in zip(eps, params)]
            self.last_perturbation_norm = float(_grad_norm(scaled))
        else:
            self.last_perturbation_norm = float(_grad_norm(eps))
        saved = [p.detach().clone() for p in params]
        torch._foreach_add_(params, eps)
        return saved

    @torch.no_grad()
    def step(self, closure=None):
        """One SAM step; returns the loss at the perturbed point.

        With m-sharpness (``m`` set) the loss is the size-weighted mean over the groups.
        """
        if closure is None:
            raise ValueError("SAM.step needs a closure that recomputes the gradient "
                             "(eoslab.core.train.fit passes one when needs_closure is True)")
        params = self._params()
        if self.rho == 0.0:
            if all(p.grad is None for p in params):
                closure()
            result = self.base.step()
            self._clear_grads(params)
            return result
        model = self.model if self.model is not None else getattr(closure, "model", None)
        if self.m is None:
            loss = None
            if all(p.grad is None for p in params):
                with torch.enable_grad():
                    closure()
            bn = _bn_buffers(model)
            saved = self._ascend(params, self._grads(params))
            with torch.enable_grad():
                loss = closure()
            for p, w in zip(params, saved):
                p.copy_(w)
        else:
            x, y = closure.x, closure.y
            n = x.shape[0]
            bn = _bn_buffers(model)
            total, loss = [torch.zeros_like(p) for p in params], 0.0
            for start in range(0, n, self.m):
                xg, yg = x[start:start + self.m], y[start:start + self.m]
                with torch.enable_grad():
                    closure(xg, yg)
                saved = self._ascend(params, self._grads(params))
                with torch.enable_grad():
                    loss = loss + closure(xg, yg).detach() * (xg.shape[0] / n)
                torch._foreach_add_(total, self._grads(params), alpha=xg.shape[0] / n)
                for p, w in zip(params, saved):
                    p.copy_(w)
            for p, g in zip(params, total):
                p.grad = g
        for buf, value in bn:
            buf.copy_(value)
        self.base.step()
        self._clear_grads(params)
        return loss

    @staticmethod
    def _clear_grads(params) -> None:
        """Drop the used gradients.

        A later step must not mistake them for the gradient at w (``step`` reuses ``.grad``
        when present, as :func:`eoslab.core.train.fit` leaves it).
        """
        for p in params:
            p.grad = None


def sam_edge(grad_norm: float, lr: float, rho: float) -> float:
    """SAM's edge of stability (Long and Bartlett, JMLR 2024, arXiv 2309.12488).

    On a local quadratic with Hessian :math:`H`, SAM's gradient is
    :math:`g + \\rho H g/\\lVert g\\rVert`, so along an eigenvector of eigenvalue
    :math:`\\lambda` (with :math:`\\lVert g\\rVert` held fixed) a deviation is multiplied
    by :math:`1 - \\eta\\lambda(1 + \\rho\\lambda/\\lVert g\\rVert)`; it stays bounded iff
    :math:`\\lambda` is at most

    .. math::

        \\lambda_{\\mathrm{SAM}} = \\frac{\\lVert g\\rVert}{2\\rho}
        \\Big(\\sqrt{1 + \\frac{8\\rho}{\\eta\\lVert g\\rVert}} - 1\\Big) \\le \\frac{2}{\\eta},

    which is :math:`2/\\eta` at :math:`\\rho = 0` and falls with the gradient norm.

    >>> sam_edge(1.0, 0.5, 0.0)        # rho = 0: GD's 2/eta
    4.0
    >>> round(sam_edge(1.0, 0.5, 0.25), 6)   # (1/0.5)(sqrt(1 + 4) - 1)
    2.472136
    """
    for name, value, low in (("grad_norm", grad_norm, 0.0), ("lr", lr, None), ("rho", rho, 0.0)):
        ok = isinstance(value, (int, float)) and math.isfinite(value) and (
            value > 0 if low is None else value >= low)
        if not ok:
            allowed = "a finite number > 0" if low is None else "a finite number >= 0"
            raise ValueError(f"{name}={value!r} is not allowed; use {allowed}")
    if rho == 0:
        return 2.0 / lr
    if grad_norm == 0:
        return 0.0
    x = 8.0 * rho / (lr * grad_norm)
    # sqrt(1 + x) - 1 = x / (sqrt(1 + x) + 1), stable for small x
    return grad_norm / (2.0 * rho) * x / (math.sqrt(1.0 + x) + 1.0)
