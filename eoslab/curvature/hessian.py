"""Hessian-vector products of the training loss, and the Hessian as a linear operator.

Every curvature probe (top eigenvalues, trace, spectral density, sharpness notions) only
needs products :math:`v \\mapsto H v` with

.. math::

    H = \\nabla^2_\\theta L(\\theta), \\qquad L(\\theta) = h\\Big(\\sum_c \\tfrac{n_c}{n}
    \\bar\\ell_c(\\theta)\\Big),

evaluated through :class:`~eoslab.curvature.objective.Objective`, i.e.
``torch.func.functional_call`` on a parameter dict, so the model itself is never touched.
Products are accumulated over data chunks weighted by their share ``n_c / n`` and computed
in one of two ways:

``method="forward"``
    forward-over-reverse (``jvp`` of ``grad``, Pearlmutter 1994), batched over several
    vectors with ``vmap``; stateless, so memory stays that of one chunk.
``method="cached"``
    the gradient graph of each chunk is built once (``create_graph=True``) and every
    product is one backward pass through it (``is_grads_batched`` for several vectors).
    It skips the forward pass of each product, so each product costs less, but it keeps
    the graphs of all chunks alive.
``method="auto"`` (default)
    ``cached`` when the data is one chunk, ``forward`` when it is chunked (chunking is
    asked for to bound memory).

An outer transform :math:`h` (``sqrt-mse``) does not decompose over chunks, so its
Hessian is assembled exactly by the chain rule around the accumulated mean :math:`m`:

.. math::

    H = h'(m)\\, H_m + h''(m)\\, g_m g_m^\\top, \\qquad g_m = \\nabla_\\theta m.

BatchNorm: the mode is the objective's ``train_mode`` (batch statistics, running buffers
untouched: the objective hands cloned buffers to ``functional_call``, which also works
under ``vmap``/``jvp``) or eval mode (running statistics).  With batch statistics and
chunking, each chunk is normalised by its own statistics.

:class:`HessianOperator` works on *flat* vectors (all probed parameters concatenated in
``objective.param_names`` order) and counts the products it has computed in ``hvps``.

Example:
    >>> import torch
    >>> from eoslab import build_model, load_dataset, Objective
    >>> data = load_dataset("quadratic", spectrum=[3.0, 1.0], dtype="float64", device="cpu")
    >>> model = build_model("linear", data.input_shape, 1, dtype="float64", device="cpu")
    >>> H = HessianOperator(Objective(model, "mse", data.x_train, data.y_train))
    >>> [round(v, 9) for v in torch.linalg.eigvalsh(H.dense()).tolist()]
    [1.0, 3.0]
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import numpy as np
import torch
from torch.func import grad, jvp, vmap

from eoslab.core.params import Params, flatten, unflatten
from eoslab.curvature.objective import Objective, iter_chunks

__all__ = ["HessianOperator", "check_finite", "flatten", "hvp", "restrict", "unflatten"]

def check_finite(params: Params) -> None:
    """Raise ``ValueError`` naming the parameters that hold NaN or infinite values."""
    bad = [n for n, p in params.items() if not bool(torch.isfinite(p).all())]
    if bad:
        raise ValueError(f"parameters {bad} hold non-finite values (NaN or inf); curvature "
                         "is only defined at finite parameters (has the run diverged?)")


def restrict(objective: Objective, include: str | Callable[[str], bool] | tuple) -> Objective:
    """The same objective over a block of the parameters (per-layer curvature).

    ``include`` is a tuple of names, a regular expression searched in each name (e.g.
    ``r"^0\\."`` or ``"bias"``), or a predicate on names; the other parameters are held at
    the model's current values.

    Raises:
        ValueError: when no trainable parameter matches.
    """
    every = [n for n, p in objective.model.named_parameters() if p.requires_grad]
    if isinstance(include, (tuple, list)):
        names = tuple(include)
    else:
        test = include if callable(include) else (lambda n: re.search(include, n) is not None)
        names = tuple(n for n in every if test(n))
    if not names:
        raise ValueError(f"include={include!r} matches no parameter; names are {every}")
    return dataclasses.replace(objective, names=names)


def hvp(objective: Objective, params: Params, vectors: Params) -> Params:
    """Hessian-vector products :math:`H v` of ``objective`` at ``params``.

    ``vectors`` maps each parameter name to one direction shaped like the parameter, or to
    a batch of directions with one extra leading dimension (then ``vmap`` is used).  For
    repeated products build a :class:`HessianOperator` instead.

    Raises:
        ValueError: ``params`` or ``vectors`` do not hold exactly the probed parameters with
            their shapes (one leading batch dimension allowed for ``vectors``) and dtype.
    """
    op = HessianOperator(objective, params)
    first = next(iter(op.params))
    _check_vectors(vectors, op.params)
    if vectors[first].dim() == op.params[first].dim() + 1:
        flat = torch.cat([vectors[n].reshape(vectors[n].shape[0], -1) for n in op.params], 1)
        return unflatten(op.matmat(flat.T).T, op.params)
    return unflatten(op.matvec(flatten({n: vectors[n] for n in op.params})), op.params)

def _check_vectors(vectors, like: Params) -> None:
    if not isinstance(vectors, dict) or vectors.keys() != like.keys():
        names = list(vectors) if isinstance(vectors, dict) else type(vectors).__name__
        raise ValueError(f"vectors must be a dict with the names {list(like)}, got {names}")
    lead = None
    for n, ref in like.items():
        v = vectors[n]
        if not torch.is_tensor(v):
            raise ValueError(f"vectors[{n!r}] must be a tensor, got {type(v).__name__}")
        extra = v.shape[:v.dim() - ref.dim()]
        if v.shape[len(extra):] != ref.shape or len(extra) > 1 or lead not in (None, extra):
            raise ValueError(f"vectors[{n!r}] has shape {tuple(v.shape)}; use the parameter's "
                             f"shape {tuple(ref.shape)}, with one leading batch dimension for "
                             "several directions (the same for every name)")
        lead = extra


class HessianOperator:
    """The Hessian of ``objective`` at ``params`` as a linear operator on flat vectors.

    Args:
        objective: the loss (data, chunking, BatchNorm mode and parameter block).
        params: the point; default the model's current values of the probed parameters.
        method: ``"auto"``, ``"forward"`` or ``"cached"`` (see the module docstring).

    Attributes:
        shape: ``(n, n)`` with ``n`` the number of probed scalars.
        hvps: Hessian-vector products computed so far (a batch of ``b`` counts ``b``).
        dtype, device: those of the parameters; vectors must match.

    Raises:
        ValueError: non-finite parameters, or ``params`` not holding exactly the probed
            parameters with the model's shapes, dtype and device (naming the tensor);
            vectors of another shape, dtype or device than the operator's (naming them).
    """

    def __init__(self, objective: Objective, params: Params | None = None,
                 method: str = "auto"):
        if method not in ("auto", "forward", "cached"):
            raise ValueError(f"method={method!r} is not allowed; use 'auto', 'forward' or "
                             "'cached'")
        if not isinstance(objective, Objective):
            raise ValueError(f"objective must be an Objective, got {type(objective).__name__}")
        self.objective = objective
        if params is not None:
            objective.check_params(params)
        params = objective.params() if params is None else {
            n: params[n].detach() for n in objective.param_names}
        check_finite(params)
        self.params = params
        self.numel = sum(p.numel() for p in params.values())
        self.shape = (self.numel, self.numel)
        first = next(iter(params.values()))
        self.dtype, self.device = first.dtype, first.device
        self.hvps = 0
        self._outer = None
        if objective.loss.outer is not None:
            self._outer = self._outer_terms()
        one_chunk = not objective.chunk_size or objective.chunk_size >= objective.x.shape[0]
        self.method = ("cached" if one_chunk else "forward") if method == "auto" else method
        self._graph = self._cached_graph() if self.method == "cached" else None

    # -- the products -------------------------------------------------------------------
    def _chunk_grad(self, xc, yc):
        return grad(lambda p: self.objective.chunk_loss(p, xc, yc))

    def _outer_terms(self):
        """:math:`h'(m), h''(m)` and the flat gradient :math:`g_m` of the inner mean."""
        g = torch.zeros(self.numel, dtype=self.dtype, device=self.device)
        m = torch.zeros((), dtype=self.dtype, device=self.device)
        for xc, yc, w in iter_chunks(self.objective.x, self.objective.y,
                                     self.objective.chunk_size):
            with torch.no_grad():
                m += w * self.objective.chunk_loss(self.params, xc, yc)
            g += w * flatten(self._chunk_grad(xc, yc)(self.params))
        h = self.objective.loss.outer
        d1 = grad(h)(m)
        d2 = grad(grad(h))(m)
        return d1, d2, g

    def _cached_graph(self):
        """Leaves and the gradient graph of each chunk, built once (``create_graph``)."""
        graphs = []
        for xc, yc, w in iter_chunks(self.objective.x, self.objective.y,
                                     self.objective.chunk_size):
            leaves = {n: p.clone().requires_grad_(True) for n, p in self.params.items()}
            with torch.enable_grad():
                loss = self.objective.chunk_loss(leaves, xc, yc)
                grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=True,
                                            allow_unused=True, materialize_grads=True)
            graphs.append((list(leaves.values()), grads, w))
        return graphs

    def _cached_products(self, V: torch.Tensor, batched: bool) -> torch.Tensor:
        total = None
        for leaves, grads, w in self._graph:
            vs = unflatten(V.T.contiguous() if batched else V, self.params)
            pairs = [(g, v) for g, v in zip(grads, vs.values()) if g.requires_grad]
            if not pairs:
                term = torch.zeros_like(V)
            else:
                out = torch.autograd.grad([g for g, _ in pairs], leaves,
                                          grad_outputs=[v for _, v in pairs],
                                          retain_graph=True, allow_unused=True,
                                          materialize_grads=True, is_grads_batched=batched)
                term = (torch.cat([o.reshape(o.shape[0], -1) for o in out], 1).T if batched
                        else flatten(out))
            term = term * w
            total = term if total is None else total + term
        return total

    def _products(self, tangents: Params, batched: bool) -> torch.Tensor:
        total = None
        for xc, yc, w in iter_chunks(self.objective.x, self.objective.y,
                                     self.objective.chunk_size):
            g = self._chunk_grad(xc, yc)

            def one(t, g=g):
                return flatten(jvp(g, (self.params,), (t,))[1])

            term = (vmap(one)(tangents) if batched else one(tangents)) * w
            total = term if total is None else total + term
        return total

    def _check_vector(self, v, name: str, matrix: bool) -> None:
        """Check shape, dtype and device of an input (a silent cast would change its precision)."""
        if not torch.is_tensor(v):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
        if matrix and (v.dim() != 2 or v.shape[0] != self.numel):
            raise ValueError(f"{name} must have shape ({self.numel}, b), got {tuple(v.shape)}")
        if not matrix and v.shape != (self.numel,):
            raise ValueError(f"{name} must have shape ({self.numel},), got {tuple(v.shape)}")
        if v.dtype != self.dtype:
            raise ValueError(f"{name} has dtype {v.dtype} but the operator is {self.dtype}; "
                             f"convert it with {name}.to({self.dtype})")
        if v.device != self.device:
            raise ValueError(f"{name} is on {v.device} but the operator is on {self.device}")

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        """:math:`H V` for a matrix ``V`` of shape ``(n, b)`` (``b`` products, one ``vmap``)."""
        self._check_vector(V, "V", matrix=True)
        if self._graph is not None:
            out = self._cached_products(V, batched=True)
        else:
            out = self._products(unflatten(V.T.contiguous(), self.params), batched=True).T
        self.hvps += V.shape[1]
        return self._chain(out, V)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`H v` for a flat vector ``v`` of length ``n``."""
        self._check_vector(v, "v", matrix=False)
        if self._graph is not None:
            out = self._cached_products(v, batched=False)
        else:
            out = self._products(unflatten(v, self.params), batched=False)
        self.hvps += 1
        return self._chain(out, v)

    def _chain(self, hm_v: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self._outer is None:
            return hm_v
        d1, d2, g = self._outer
        if v.dim() == 1:
            return d1 * hm_v + d2 * (g @ v) * g
        return d1 * hm_v + d2 * torch.outer(g, g @ v)

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(v):
            raise ValueError(f"H @ v needs a torch.Tensor, got {type(v).__name__}")
        return self.matvec(v) if v.dim() == 1 else self.matmat(v)

    # -- views --------------------------------------------------------------------------
    def gradient(self) -> torch.Tensor:
        """The flat full-batch gradient :math:`\\nabla L(\\theta)` (outer transform included)."""
        if self._outer is not None:
            d1, _, g = self._outer
            return d1 * g
        total = torch.zeros(self.numel, dtype=self.dtype, device=self.device)
        for xc, yc, w in iter_chunks(self.objective.x, self.objective.y,
                                     self.objective.chunk_size):
            total += w * flatten(self._chunk_grad(xc, yc)(self.params))
        return total

    def dense(self, batch: int = 256) -> torch.Tensor:
        """The full ``(n, n)`` matrix, ``batch`` columns at a time (small problems only)."""
        eye = torch.eye(self.numel, dtype=self.dtype, device=self.device)
        cols = [self.matmat(eye[:, i:i + batch]) for i in range(0, self.numel, batch)]
        return torch.cat(cols, dim=1)

    def to_scipy(self):
        """A ``scipy.sparse.linalg.LinearOperator`` view (float64 numpy in and out).

        Lets ``scipy.sparse.linalg.eigsh`` cross-check the eigen-solvers; each product
        still runs on the operator's device and counts in ``hvps``.
        """
        from scipy.sparse.linalg import LinearOperator

        def mv(x):
            t = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(-1), device=self.device)
            return self.matvec(t.to(self.dtype)).detach().double().cpu().numpy()

        def mm(X):
            t = torch.as_tensor(np.asarray(X, dtype=np.float64), device=self.device)
            return self.matmat(t.to(self.dtype)).detach().double().cpu().numpy()

        return LinearOperator(self.shape, matvec=mv, matmat=mm, rmatvec=mv, dtype=np.float64)

    def random(self, k: int | None = None, generator: torch.Generator | None = None,
               kind: str = "gaussian") -> torch.Tensor:
        """Random vectors on the operator's device: ``(n,)`` or ``(n, k)``.

        ``kind`` is ``"gaussian"`` or ``"rademacher"``; ``generator`` is a CPU generator so
        results are the same on every device.
        """
        shape = (self.numel,) if k is None else (self.numel, k)
        if kind == "gaussian":
            out = torch.randn(shape, generator=generator, dtype=torch.float64)
        elif kind == "rademacher":
            out = torch.randint(0, 2, shape, generator=generator).double() * 2 - 1
        else:
            raise ValueError(f"kind={kind!r} is not allowed; use 'gaussian' or 'rademacher'")
        return out.to(device=self.device, dtype=self.dtype)

    def __repr__(self) -> str:
        return (f"HessianOperator(n={self.numel}, dtype={self.dtype}, device={self.device}, "
                f"hvps={self.hvps})")

