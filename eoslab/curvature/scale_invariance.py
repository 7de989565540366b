"""Scale-invariant networks, their weight norms, effective step size and spherical sharpness.

A weight group :math:`w` is *scale-invariant* when :math:`L(c\\,w) = L(w)` for every
:math:`c > 0`, e.g. a bias-free linear layer followed by BatchNorm (batch statistics) or
LayerNorm.  Differentiating the identity gives the three facts the chapters 12 and 13 rest
on (Lobacheva et al. 2021, arXiv 2106.15739; Lyu, Li, Arora 2022, arXiv 2206.07085):

.. math::

    \\langle \\nabla L(w), w\\rangle = 0, \\qquad
    \\nabla L(c w) = \\tfrac1c \\nabla L(w), \\qquad
    \\nabla^2 L(c w) = \\tfrac1{c^2} \\nabla^2 L(w).

So a GD step of size :math:`\\eta` at norm :math:`\\lVert w\\rVert` moves the *direction*
:math:`w/\\lVert w\\rVert` like a step of size :math:`\\eta/\\lVert w\\rVert^2` on the unit
sphere (the *effective learning rate*), and the curvature that matters is the *spherical
sharpness* :math:`\\lambda_{\\max}(\\nabla^2 L(w/\\lVert w\\rVert)) = \\lVert w\\rVert^2
\\lambda_{\\max}(\\nabla^2 L(w))`.  With weight decay :math:`\\lambda` (``torch.optim.SGD``'s
coupled ``weight_decay``) the update is :math:`w \\leftarrow (1-\\eta\\lambda) w - \\eta g` with
:math:`g \\perp w`, hence the exact norm recursion

.. math::

    \\lVert w_{t+1}\\rVert^2 = (1-\\eta\\lambda)^2 \\lVert w_t\\rVert^2
    + \\eta^2 \\lVert g_t\\rVert^2:

weight decay shrinks the norm (raising the effective step), the gradient grows it.

Example:
    >>> import torch
    >>> net = ScaleInvariantMLP(4, 3, width=5, depth=2, seed=0)
    >>> scale_invariant_names(net)
    ('1.weight', '4.weight')
    >>> effective_lr(0.1, 0.5), spherical_sharpness(40.0, 0.5)
    (0.4, 10.0)
    >>> round(wd_norm_step(4.0, 1.0, lr=0.1, wd=0.5), 4)   # 0.95^2 * 4 + 0.01 * 1
    3.62
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import pairwise

import torch
from torch import nn

from eoslab.core.optim import check_lr

__all__ = [
    "NORMS",
    "FixedLinear",
    "ScaleInvariantMLP",
    "ScaleInvariantProbe",
    "effective_lr",
    "group_norms",
    "scale_invariant_names",
    "spherical_sharpness",
    "total_norm",
    "wd_norm_step",
]

NORMS = ("batch", "layer", "none")


class FixedLinear(nn.Module):
    """:math:`x \\mapsto x A^\\top` with a random, *untrained* matrix ``A`` (a buffer).

    ``scale`` sets the size of the logits: :math:`A_{ij} \\sim \\mathcal N(0, s^2/\\text{fan-in})`.
    A larger scale lets the cross-entropy reach a near-zero loss although the normalised
    features feeding it are of unit size.
    """

    def __init__(self, fan_in: int, fan_out: int, scale: float = 1.0):
        super().__init__()
        self.register_buffer("weight", scale * torch.randn(fan_out, fan_in) / math.sqrt(fan_in))

    def forward(self, x):
        return x @ self.weight.T


class ScaleInvariantMLP(nn.Sequential):
    """Flatten, then ``depth`` x [bias-free Linear, norm, ReLU], then a fixed random head.

    With ``norm="batch"`` (BatchNorm without affine parameters, batch statistics) or
    ``norm="layer"`` (LayerNorm without affine parameters) every trained weight matrix is
    scale-invariant; ``norm="none"`` is the same net without normalisation (positively
    homogeneous, *not* scale-invariant), the baseline of Santurkar et al. (2018).

    Args:
        n_inputs, n_outputs: input length and number of classes.
        width, depth: hidden width and number of hidden layers (>= 1).
        norm: one of :data:`NORMS`.
        out_scale: scale of the fixed head (see :class:`FixedLinear`).
        init: ``"torch"`` (PyTorch's default uniform init) or ``"kaiming"`` (normal with
            variance :math:`2/\\text{fan-in}`: without normalisation the ReLU signal keeps
            its size through the layers, so the nets with and without a norm start alike).
        eps: the normalisation's :math:`\\epsilon` (PyTorch's default ``1e-5``); it breaks the
            invariance slightly once the pre-activations' variance is that small.
        seed: the initialisation depends on this seed only.

    Raises:
        ValueError: a bad ``norm``, size or scale, naming the value and what is allowed.
    """

    def __init__(self, n_inputs: int, n_outputs: int, width: int = 64, depth: int = 2,
                 norm: str = "batch", out_scale: float = 10.0, eps: float = 1e-5,
                 init: str = "torch", seed: int = 0):
        if norm not in NORMS:
            raise ValueError(f"norm={norm!r} is not allowed; allowed: {', '.join(NORMS)}")
        for name, value in (("n_inputs", n_inputs), ("n_outputs", n_outputs),
                            ("width", width), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} is not allowed; use an integer >= 1")
        if not (isinstance(out_scale, (int, float)) and math.isfinite(out_scale)
                and out_scale > 0):
            raise ValueError(f"out_scale={out_scale!r} is not allowed; use a finite number > 0")
        if init not in ("torch", "kaiming"):
            raise ValueError(f"init={init!r} is not allowed; allowed: torch, kaiming")
        if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
            raise ValueError(f"eps={eps!r} is not allowed; use a finite number > 0")
        layers: list[nn.Module] = [nn.Flatten()]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fan_in = n_inputs
            for _ in range(depth):
                layers.append(nn.Linear(fan_in, width, bias=False))
                if init == "kaiming":
                    nn.init.kaiming_normal_(layers[-1].weight, nonlinearity="relu")
                if norm == "batch":
                    layers.append(nn.BatchNorm1d(width, eps=eps, affine=False))
                elif norm == "layer":
                    layers.append(nn.LayerNorm(width, eps=eps, elementwise_affine=False))
                layers.append(nn.ReLU())
                fan_in = width
            layers.append(FixedLinear(fan_in, n_outputs, float(out_scale)))
        super().__init__(*layers)
        self.norm = norm


_NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def scale_invariant_names(model: nn.Module) -> tuple[str, ...]:
    """Names of the weights that a normalisation layer right after them makes scale-invariant.

    Looks through every ``nn.Sequential`` for a bias-free ``Linear`` or ``Conv`` followed
    directly by BatchNorm, LayerNorm or GroupNorm (with a bias, :math:`L(cw, b) \\ne L(w, b)`).
    """
    names = []
    for prefix, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (name, layer), (_, after) in pairwise(children):
            weighted = isinstance(layer, (nn.Linear, nn.modules.conv._ConvNd))
            if weighted and layer.bias is None and isinstance(after, _NORM_LAYERS):
                names.append(f"{prefix}.{name}.weight" if prefix else f"{name}.weight")
    return tuple(names)


def group_norms(params: Mapping[str, torch.Tensor], names: Sequence[str]) -> dict[str, float]:
    """:math:`\\lVert w_l\\rVert` of each named group (``params``: a name -> tensor mapping).

    >>> group_norms({"a": torch.tensor([3.0, 4.0]), "b": torch.ones(4)}, ["a", "b"])
    {'a': 5.0, 'b': 2.0}
    """
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"unknown parameter names {missing}; allowed: {list(params)}")
    return {n: float(torch.linalg.vector_norm(params[n].detach())) for n in names}


def total_norm(norms: Mapping[str, float]) -> float:
    """:math:`\\sqrt{\\sum_l \\lVert w_l\\rVert^2}` of per-group norms.

    >>> total_norm({"a": 3.0, "b": 4.0})
    5.0
    """
    return math.sqrt(sum(v * v for v in norms.values()))


def _check_norm(norm) -> float:
    if not (isinstance(norm, (int, float)) and math.isfinite(norm) and norm > 0):
        raise ValueError(f"norm={norm!r} is not allowed; a weight norm must be finite and > 0")
    return float(norm)


def effective_lr(lr: float, norm: float) -> float:
    """:math:`\\eta / \\lVert w\\rVert^2`, the step size on the unit sphere."""
    return check_lr(lr) / _check_norm(norm) ** 2


def spherical_sharpness(sharpness: float, norm: float) -> float:
    """Spherical sharpness :math:`\\lVert w\\rVert^2\\, \\lambda_{\\max}(\\nabla^2 L(w))`.

    It is the sharpness at :math:`w/\\lVert w\\rVert`.
    """
    return float(sharpness) * _check_norm(norm) ** 2


def wd_norm_step(norm_sq: float, grad_sq: float, lr: float, wd: float) -> float:
    """:math:`\\lVert w_{t+1}\\rVert^2` after one GD + weight-decay step.

    The gradient is taken orthogonal to the weights, :math:`g \\perp w`.
    """
    lr = check_lr(lr)
    if not (isinstance(wd, (int, float)) and math.isfinite(wd) and wd >= 0):
        raise ValueError(f"wd={wd!r} is not allowed; weight decay must be a finite number >= 0")
    return (1.0 - lr * wd) ** 2 * float(norm_sq) + lr * lr * float(grad_sq)


class ScaleInvariantProbe:
    """Weight norms and effective step size of the scale-invariant groups, during ``fit``.

    Row keys: ``si_norm`` (:math:`\\lVert w\\rVert` over all groups), ``eff_lr``
    (:math:`\\eta/\\lVert w\\rVert^2`), ``norm_<i>`` per group, and with ``sharpness=True``
    also ``sharpness`` (top Hessian eigenvalue over the groups, BatchNorm in train mode:
    the loss being trained) and ``spherical_sharpness``.

    Args:
        every: run at steps divisible by this.
        names: the groups (default :func:`scale_invariant_names` of the model).
        sharpness: also compute the (spherical) sharpness (Lanczos, warm-started).
        tol: Lanczos tolerance.
    """

    def __init__(self, every: int, names: Sequence[str] | None = None, sharpness: bool = False,
                 tol: float = 1e-2):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} is not allowed; use an integer >= 1")
        self.every, self.names = every, tuple(names) if names is not None else None
        self._sharpness = None
        if sharpness:
            from eoslab.curvature.sharpness import SharpnessProbe

            self._sharpness = SharpnessProbe(every, tol=tol, train_mode=True, precond=False)

    def __call__(self, ctx) -> dict:
        names = self.names or scale_invariant_names(ctx.model)
        if not names:
            raise ValueError("the model has no scale-invariant weights (a bias-free Linear or "
                             "Conv followed by a normalisation layer)")
        norms = group_norms(dict(ctx.model.named_parameters()), names)
        norm = total_norm(norms)
        row = {"si_norm": norm, "eff_lr": ctx.lr / norm ** 2}
        row.update({f"norm_{i}": v for i, v in enumerate(norms.values())})
        if self._sharpness is not None:
            self._sharpness.include = tuple(names)
            s = self._sharpness(ctx)["sharpness"]
            row.update(sharpness=s, spherical_sharpness=s * norm ** 2)
        return row
