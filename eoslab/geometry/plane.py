"""The plane through three weight vectors, projections onto it, and PCA of trajectories.

Garipov, Izmailov, Podoprikhin, Vetrov, Wilson, "Loss Surfaces, Mode Connectivity, and
Fast Ensembling of DNNs", NeurIPS 2018 (arXiv 1802.10026), draw the loss on the affine
plane through three weight vectors :math:`w_1, w_2, w_3` with the orthonormal basis

.. math::

    u = \\frac{w_2 - w_1}{\\lVert w_2 - w_1\\rVert}, \\qquad
    v = \\frac{r}{\\lVert r\\rVert},\\quad r = (w_3 - w_1) - \\langle w_3 - w_1, u\\rangle u,

so a point :math:`(x, y)` of the plane is :math:`w_1 + x u + y v` and any weight vector
:math:`w` has coordinates :math:`(\\langle w - w_1, u\\rangle, \\langle w - w_1, v\\rangle)`
(its orthogonal projection).  The three points land at :math:`(0, 0)`,
:math:`(\\lVert w_2 - w_1\\rVert, 0)` and a point with :math:`y > 0`.

Trajectories (SGD iterates, SWA snapshots) can also be shown on the top principal
directions of the iterates themselves (Li et al. 2018, "Visualizing the Loss Landscape of
Neural Nets", section 7): :func:`pca_directions`.

Example:
    >>> import torch
    >>> w = lambda a, b: {"w": torch.tensor([a, b, 0.0])}
    >>> plane = Plane.through(w(0, 0), w(2, 0), w(1, 3))
    >>> plane.coords(w(1, 3)), plane.coords(w(2, 0))
    ((1.0, 3.0), (2.0, 0.0))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from eoslab.geometry.directions import Params, check_compatible
from eoslab.geometry.landscape import slice_2d

__all__ = ["Plane", "pca_directions", "project"]


def _flat(p: Params) -> torch.Tensor:
    return torch.cat([v.detach().reshape(-1).double() for v in p.values()])


def _unflat(vector: torch.Tensor, like: Params) -> Params:
    out, start = {}, 0
    for k, v in like.items():
        out[k] = vector[start:start + v.numel()].reshape(v.shape).to(v)
        start += v.numel()
    return out


@dataclass
class Plane:
    """An affine plane :math:`\\{w_1 + x u + y v\\}` in weight space (see the module docs).

    Attributes:
        origin: :math:`w_1`.
        u, v: orthonormal directions.
        anchors: plane coordinates of the three defining points (``(0, 0)`` first).
    """

    origin: Params
    u: Params
    v: Params
    anchors: tuple[tuple[float, float], ...] = ()

    @classmethod
    def through(cls, w1: Params, w2: Params, w3: Params, tol: float = 1e-6) -> Plane:
        """The plane through three weight vectors (Garipov et al. 2018).

        Raises:
            ValueError: mismatched architectures, ``w2 == w1``, or three (numerically)
                collinear points (the residual of :math:`w_3 - w_1` below ``tol`` times its norm).
        """
        check_compatible(w1, w2, ("w1", "w2"))
        check_compatible(w1, w3, ("w1", "w3"))
        a, b, c = _flat(w1), _flat(w2), _flat(w3)
        e1, e2 = b - a, c - a
        n1 = float(e1.norm())
        if n1 <= tol * max(float(a.norm()), 1e-30):
            raise ValueError("w2 equals w1; the plane needs three distinct, non-collinear "
                             "weight vectors")
        u = e1 / n1
        r = e2 - (e2 @ u) * u
        r = r - (r @ u) * u
        if float(r.norm()) <= tol * max(float(e2.norm()), n1):
            raise ValueError("w1, w2, w3 are collinear (w3 - w1 is parallel to w2 - w1); "
                             "give three weight vectors that span a plane")
        v = r / r.norm()
        anchors = ((0.0, 0.0), (n1, 0.0), (float(e2 @ u), float(e2 @ v)))
        return cls({k: t.detach().clone() for k, t in w1.items()}, _unflat(u, w1),
                   _unflat(v, w1), anchors)

    @classmethod
    def from_directions(cls, origin: Params, u: Params, v: Params) -> Plane:
        """A plane from an origin and two directions (orthonormalised by Gram--Schmidt)."""
        check_compatible(origin, u, ("origin", "u"))
        check_compatible(origin, v, ("origin", "v"))
        return cls.through(origin, {k: origin[k] + u[k] for k in origin},
                           {k: origin[k] + v[k] for k in origin})

    def coords(self, w: Params) -> tuple[float, float]:
        """:math:`(\\langle w - w_1, u\\rangle, \\langle w - w_1, v\\rangle)`."""
        check_compatible(self.origin, w, ("plane", "w"))
        delta = _flat(w) - _flat(self.origin)
        return float(delta @ _flat(self.u)), float(delta @ _flat(self.v))

    def distance(self, w: Params) -> float:
        """Euclidean distance from ``w`` to the plane."""
        x, y = self.coords(w)
        delta = _flat(w) - _flat(self.origin)
        return float((delta - x * _flat(self.u) - y * _flat(self.v)).norm())

    def point(self, x: float, y: float) -> Params:
        """The weight vector :math:`w_1 + x u + y v`."""
        return {k: self.origin[k] + float(x) * self.u[k] + float(y) * self.v[k]
                for k in self.origin}

    def project(self, trajectory: Sequence[Params]) -> torch.Tensor:
        """Plane coordinates ``(T, 2)`` of each weight vector of a trajectory."""
        return project(trajectory, self.origin, [self.u, self.v])

    def grid(self, n: int = 41, margin: float = 0.2,
             extra: Sequence[tuple[float, float]] = ()) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` x-values and ``n`` y-values covering the anchors and ``extra`` points.

        The grid extends a ``margin`` fraction of the extent beyond them on each side.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"n={n!r} is not allowed; use an integer >= 2")
        pts = torch.tensor(list(self.anchors) + list(extra), dtype=torch.float64)
        lo, hi = pts.min(dim=0).values, pts.max(dim=0).values
        span = (hi - lo).clamp_min(1e-12)
        lo, hi = lo - margin * span, hi + margin * span
        return torch.linspace(lo[0], hi[0], n), torch.linspace(lo[1], hi[1], n)

    def evaluate(self, objective, xs, ys, **options) -> dict:
        """Loss/accuracy on the grid ``xs`` x ``ys`` of this plane (see :func:`slice_2d`).

        The batched evaluation applies the speed layers of :mod:`eoslab.speed` (off with
        ``EOSLAB_SPEED=0``, same values to rounding).
        """
        return slice_2d(objective, self.origin, self.u, self.v, xs, ys, **options)


def project(trajectory: Sequence[Params], origin: Params,
            directions: Sequence[Params]) -> torch.Tensor:
    """Coordinates ``(T, K)``: :math:`c_{tk} = \\langle w_t - \\mathrm{origin}, d_k\\rangle`.

    Orthogonal projection when the directions are orthonormal.
    """
    if len(trajectory) == 0:
        raise ValueError("the trajectory is empty; give at least one weight vector")
    basis = torch.stack([_flat(d) for d in directions], dim=1)
    o = _flat(origin)
    rows = []
    for i, w in enumerate(trajectory):
        check_compatible(origin, w, ("origin", f"trajectory[{i}]"))
        rows.append((_flat(w) - o) @ basis)
    return torch.stack(rows)


def pca_directions(trajectory: Sequence[Params], k: int = 2, origin: str = "last"
                   ) -> tuple[list[Params], torch.Tensor]:
    """Top-``k`` principal directions of a trajectory and their explained-variance ratios.

    As Li et al. (2018, section 7): the rows :math:`w_t - w_{\\mathrm{origin}}` (origin the
    last iterate, or their ``"mean"``) are centred and decomposed by an SVD; the right
    singular vectors are the directions.  Use :func:`project` with the same origin to get
    the trajectory's coordinates.

    >>> import torch
    >>> traj = [{"w": torch.tensor([t, 2.0 * t, 0.0])} for t in range(5)]
    >>> dirs, ratio = pca_directions(traj, k=1)
    >>> [round(abs(float(x)) * 5 ** 0.5, 4) for x in dirs[0]["w"]], round(float(ratio[0]), 4)
    ([1.0, 2.0, 0.0], 1.0)
    """
    if origin not in ("last", "mean"):
        raise ValueError(f"origin={origin!r} is not allowed; allowed: last, mean")
    if len(trajectory) < 2:
        raise ValueError(f"the trajectory has {len(trajectory)} weight vectors; PCA needs >= 2")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(trajectory) - 1:
        raise ValueError(f"k={k!r} is not allowed; use an integer in [1, {len(trajectory) - 1}]")
    for i, w in enumerate(trajectory):
        check_compatible(trajectory[0], w, ("trajectory[0]", f"trajectory[{i}]"))
    m = torch.stack([_flat(w) for w in trajectory])
    m = m - (m[-1] if origin == "last" else m.mean(dim=0))
    m = m - m.mean(dim=0)
    _, s, vh = torch.linalg.svd(m, full_matrices=False)
    var = s.pow(2)
    ratio = var[:k] / var.sum().clamp_min(1e-300)
    return [_unflat(vh[i], trajectory[0]) for i in range(k)], ratio
