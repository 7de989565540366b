"""Directions in weight space: dicts of tensors keyed like the model's parameters.

A *direction* :math:`d` has one tensor per probed parameter, of the parameter's shape, so
that :math:`\\theta + \\alpha d` is again a parameter dict.  Slices, planes and curves
(:mod:`eoslab.geometry.landscape`, :mod:`eoslab.geometry.plane`,
:mod:`eoslab.geometry.curves`) are built from them.

Kinds provided here:

* :func:`random_direction` -- i.i.d. :math:`\\mathcal N(0, 1)` entries from a seeded CPU
  generator (the same numbers on every device).
* :func:`filter_normalize` -- Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss
  Landscape of Neural Nets", NeurIPS 2018 (arXiv 1712.09913): each *filter* (output row
  ``d[i]`` of a weight with two or more dimensions) is rescaled to the norm of the same
  filter of the weights,

  .. math:: d_{i} \\leftarrow \\frac{d_{i}}{\\lVert d_{i}\\rVert}\\,\\lVert\\theta_{i}\\rVert .

  This makes slices of ReLU nets invariant to the rescaling symmetry
  :math:`(W_\\ell, W_{\\ell+1}) \\to (c W_\\ell, W_{\\ell+1}/c)`.  One-dimensional parameters
  (biases, BatchNorm scales and shifts) are set to zero by default (``bias="zero"``, as the
  paper's "ignore biasbn" option); ``bias="copy"`` uses :math:`d = \\theta` for them (the
  paper's code otherwise) and ``bias="filter"`` rescales the whole vector to
  :math:`\\lVert\\theta\\rVert` (each vector is one filter).
* :func:`layer_normalize` -- one factor per parameter tensor, :math:`d \\leftarrow d\\,
  \\lVert\\theta\\rVert/\\lVert d\\rVert`.
* :func:`gradient_direction`, :func:`hessian_directions` (top eigenvectors, computed by
  :mod:`eoslab.curvature.eigen` or given), :func:`difference` (:math:`\\theta_b - \\theta_a`).

Example:
    >>> import torch
    >>> w = {"lin.weight": torch.tensor([[3.0, 4.0], [0.0, 1.0]]), "lin.bias": torch.ones(2)}
    >>> d = filter_normalize(random_direction(w, seed=0), w)
    >>> [round(float(r.norm()), 4) for r in d["lin.weight"]], d["lin.bias"].tolist()
    ([5.0, 1.0], [0.0, 0.0])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from eoslab.core.params import Params, flatten, unflatten

__all__ = [
    "Params",
    "add",
    "check_compatible",
    "combine",
    "difference",
    "dot",
    "filter_normalize",
    "flatten",
    "gradient_direction",
    "hessian_directions",
    "layer_normalize",
    "norm",
    "normalize",
    "orthonormalize",
    "random_direction",
    "scale",
    "unflatten",
]

BIAS_MODES = ("zero", "copy", "filter")


def check_compatible(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
                     names: tuple[str, str] = ("a", "b")) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same keys and shapes."""
    if set(a) != set(b):
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        raise ValueError(f"mismatched architectures: {names[0]} has extra parameters {only_a} "
                         f"and {names[1]} has extra parameters {only_b}; both must have the "
                         "same parameter names")
    for key in a:
        if tuple(a[key].shape) != tuple(b[key].shape):
            raise ValueError(f"mismatched architectures: parameter {key!r} has shape "
                             f"{tuple(a[key].shape)} in {names[0]} but {tuple(b[key].shape)} "
                             f"in {names[1]}; shapes must match")


def dot(a: Params, b: Params) -> torch.Tensor:
    """:math:`\\langle a, b\\rangle = \\sum_k \\mathrm{sum}(a_k b_k)` (a 0-d tensor)."""
    check_compatible(a, b)
    return sum((a[k] * b[k]).sum() for k in a)


def norm(a: Params) -> torch.Tensor:
    """The Euclidean norm of all entries together."""
    return torch.sqrt(sum(a[k].pow(2).sum() for k in a))


def add(a: Params, b: Params, alpha: float = 1.0) -> Params:
    """:math:`a + \\alpha b`."""
    check_compatible(a, b)
    return {k: a[k] + alpha * b[k] for k in a}


def scale(a: Params, factor) -> Params:
    """:math:`c\\,a`."""
    return {k: a[k] * factor for k in a}


def combine(base: Params, coefficients: Sequence[float], directions: Sequence[Params]) -> Params:
    """:math:`\\theta + \\sum_j c_j d_j`."""
    if len(coefficients) != len(directions):
        raise ValueError(f"{len(coefficients)} coefficients for {len(directions)} directions; "
                         "give one coefficient per direction")
    out = {k: v.clone() for k, v in base.items()}
    for c, d in zip(coefficients, directions):
        check_compatible(base, d, ("base", "direction"))
        for k, v in out.items():
            v.add_(d[k], alpha=float(c))
    return out


def random_direction(params: Params, seed: int = 0) -> Params:
    """Zero-mean unit-variance Gaussian entries, reproducible from ``seed`` on any device."""
    gen = torch.Generator().manual_seed(int(seed))
    return {k: torch.randn(v.shape, generator=gen, dtype=torch.float64).to(v)
            for k, v in params.items()}


def filter_normalize(direction: Params, params: Params, bias: str = "zero",
                     eps: float = 1e-10) -> Params:
    """Li et al. (2018) filter normalisation of ``direction`` against ``params``.

    Args:
        direction: the direction to rescale, a dict of tensors.
        params: the weights it is normalised against, with the same keys and shapes.
        bias: what to do with 1-D parameters (biases, BatchNorm): ``"zero"`` (default),
            ``"copy"`` (:math:`d=\\theta`) or ``"filter"`` (the whole vector is one filter).
        eps: guards the division for all-zero filters.
    """
    check_compatible(direction, params, ("direction", "params"))
    if bias not in BIAS_MODES:
        raise ValueError(f"bias={bias!r} is not allowed; allowed: {', '.join(BIAS_MODES)}")
    out = {}
    for k, d in direction.items():
        w = params[k]
        if d.dim() <= 1:
            if bias == "zero":
                out[k] = torch.zeros_like(d)
            elif bias == "copy":
                out[k] = w.clone()
            else:
                out[k] = d * (w.norm() / (d.norm() + eps))
            continue
        d_rows, w_rows = d.reshape(d.shape[0], -1), w.reshape(w.shape[0], -1)
        factor = w_rows.norm(dim=1, keepdim=True) / (d_rows.norm(dim=1, keepdim=True) + eps)
        out[k] = (d_rows * factor).reshape(d.shape)
    return out


def layer_normalize(direction: Params, params: Params, eps: float = 1e-10) -> Params:
    """Rescale each tensor of ``direction`` to the norm of the same tensor of ``params``."""
    check_compatible(direction, params, ("direction", "params"))
    return {k: d * (params[k].norm() / (d.norm() + eps)) for k, d in direction.items()}


def normalize(direction: Params, eps: float = 1e-30) -> Params:
    """:math:`d / \\lVert d\\rVert` (raises for the zero direction)."""
    size = float(norm(direction))
    if size <= eps:
        raise ValueError("the direction is zero; it cannot be normalised")
    return scale(direction, 1.0 / size)


def difference(a: Params, b: Params) -> Params:
    """:math:`\\theta_b - \\theta_a`, the direction from ``a`` to ``b``."""
    check_compatible(a, b)
    return {k: (b[k] - a[k]).detach().clone() for k in a}


def gradient_direction(objective, params: Params | None = None, unit: bool = True) -> Params:
    """:math:`\\nabla L(\\theta)` of an :class:`~eoslab.curvature.objective.Objective`.

    Of unit norm if ``unit``.  The ascent direction; negate it for the descent direction.
    """
    params = objective.params() if params is None else params
    params = {k: v.detach() for k, v in params.items()}
    grad = torch.func.grad(lambda p: objective(p))(params)
    return normalize(grad) if unit else grad


def orthonormalize(directions: Iterable[Params], eps: float = 1e-8) -> list[Params]:
    """Gram--Schmidt: orthonormal directions spanning the same space (twice, for stability).

    Raises ``ValueError`` when a direction is (numerically) in the span of the previous ones.
    """
    basis: list[Params] = []
    for i, d in enumerate(directions):
        size0 = float(norm(d))
        r = dict(d)
        for _ in range(2):
            for b in basis:
                r = add(r, b, -float(dot(r, b)))
        size = float(norm(r))
        if size <= eps * max(size0, 1e-30):
            raise ValueError(f"direction {i} is linearly dependent on the previous ones "
                             "(collinear); give independent directions")
        basis.append(scale(r, 1.0 / size))
    return basis


def hessian_directions(objective, params: Params | None = None, k: int = 2,
                       eigenvectors: Sequence[Params] | None = None, **solver_options
                       ) -> list[Params]:
    """The top-``k`` Hessian eigenvectors at ``params`` as unit directions.

    Precomputed ``eigenvectors`` (dicts or flat vectors in ``objective.param_names``
    order) are accepted and only normalised; otherwise :func:`eoslab.curvature.eigen.top_eigen` on
    :class:`eoslab.curvature.hessian.HessianOperator` computes them (``solver_options`` go there).
    """
    params = objective.params() if params is None else params
    params = {n: params[n].detach() for n in objective.param_names}
    if eigenvectors is None:
        from eoslab.curvature.eigen import top_eigen
        from eoslab.curvature.hessian import HessianOperator

        result = top_eigen(HessianOperator(objective, params), k=k, **solver_options)
        eigenvectors = list(result.vectors.T)
    out = []
    for v in list(eigenvectors)[:k]:
        if torch.is_tensor(v):
            v = unflatten(v.reshape(-1).to(next(iter(params.values()))), params)
        check_compatible(v, params, ("eigenvector", "params"))
        out.append(normalize(v))
    return out
