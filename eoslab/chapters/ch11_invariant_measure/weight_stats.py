"""Where SGD's weights go when the loss has stopped falling: movement and distribution.

Zhang, Li, Sra, Jadbabaie, "Neural Network Weights Do Not Converge to Stationary Points:
An Invariant Measure Perspective", ICML 2022 (arXiv 2110.06256).  With a fixed step size,
SGD is a Markov chain :math:`\\theta_{t+1} = \\theta_t - \\eta\\, g(\\theta_t, \\xi_t)` on the
weights.  The paper observes that in practice the training loss stabilises while the
full-batch gradient norm :math:`\\lVert\\nabla F(\\theta_t)\\rVert` does *not* go to zero,
and explains it by the convergence of the *law* of :math:`\\theta_t` to an (approximately)
invariant measure :math:`\\mu`, :math:`\\mathbb E_{\\theta\\sim\\mu}[F(\\theta - \\eta g)]
= \\mathbb E_{\\theta \\sim\\mu}[F(\\theta)]`: the expected loss stops changing although
each iterate keeps moving.

This module measures that picture along one run.  Over a window of :math:`\\Delta` steps,

.. math::

    m_t = \\frac{\\lVert\\theta_t - \\theta_{t-\\Delta}\\rVert}{\\sqrt d}, \\qquad
    W_t = W_1\\big(\\hat\\nu_{\\theta_t}, \\hat\\nu_{\\theta_{t-\\Delta}}\\big),

the RMS move of a coordinate and the Wasserstein-1 distance between the empirical
distributions :math:`\\hat\\nu_\\theta = \\frac1d\\sum_i\\delta_{\\theta_i}` of the weight
entries (``scipy.stats.wasserstein_distance``).  Pairing each entry with itself is one
coupling, so :math:`W_t \\le \\frac1d\\sum_i|\\Delta\\theta_i| \\le m_t`: the ratio
:math:`W_t/m_t \\in [0, 1]` is 1 when the weights move together (the distribution drifts
with them) and near 0 when they only reshuffle within a fixed distribution.

The test bed with a known answer is SGD on :math:`F(\\theta) = \\tfrac a2\\lVert\\theta\\rVert^2`
with additive gradient noise of std :math:`\\sigma` per coordinate: each coordinate is an
AR(1) chain :math:`\\theta_{t+1} = (1 - \\eta a)\\theta_t + \\eta\\sigma\\xi_t` whose
invariant law is :math:`\\mathcal N(0, v)` with :math:`v = \\eta\\sigma^2/(a(2 - \\eta a))`
(:func:`quadratic_stationary_variance`), and at stationarity
:math:`\\mathbb E\\, m_t^2 = 2v(1 - (1 - \\eta a)^\\Delta)` while
:math:`\\mathbb E\\lVert\\nabla F\\rVert^2 = a^2 d v > 0`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

__all__ = ["WeightStatsProbe", "flat_weights", "full_gradient_norm", "quadratic_sgd_chain",
           "quadratic_stationary_variance", "window_stats"]


def flat_weights(params) -> torch.Tensor:
    """All entries of a module's parameters (or a dict / list of tensors) as one detached vector.

    >>> flat_weights([torch.ones(2, 2), torch.zeros(1)]).tolist()
    [1.0, 1.0, 1.0, 1.0, 0.0]
    """
    if isinstance(params, torch.nn.Module):
        params = [p for p in params.parameters() if p.requires_grad]
    elif isinstance(params, dict):
        params = list(params.values())
    return torch.cat([p.detach().reshape(-1) for p in params])


def window_stats(before, after) -> dict:
    """How far the weights and their distribution moved between two snapshots.

    Returns ``move_rms`` (:math:`m`), ``w1`` (:math:`W_1` of the entries' distributions),
    ``ks`` (the two-sample Kolmogorov-Smirnov statistic of the same) and ``ratio``
    (:math:`W_1/m`, ``None`` when nothing moved).

    >>> s = window_stats([0.0, 1.0, 2.0], [1.0, 2.0, 0.0])   # a reshuffle
    >>> round(s["w1"], 12), round(s["move_rms"], 4), s["ratio"]
    (0.0, 1.4142, 0.0)
    >>> window_stats([0.0, 1.0], [0.5, 1.5])["ratio"]        # a shift
    1.0
    """
    a = np.asarray(torch.as_tensor(before, dtype=torch.float64).cpu()).reshape(-1)
    b = np.asarray(torch.as_tensor(after, dtype=torch.float64).cpu()).reshape(-1)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"snapshots of shapes {a.shape} and {b.shape}: use two non-empty "
                         "vectors of the same length")
    move = float(np.sqrt(np.mean((b - a) ** 2)))
    w1 = float(stats.wasserstein_distance(a, b))
    ks = float(stats.ks_2samp(a, b).statistic)
    return {"move_rms": move, "w1": w1, "ks": ks, "ratio": w1 / move if move > 0 else None}


def full_gradient_norm(objective, params: dict | None = None, weight_decay: float = 0.0
                       ) -> float:
    """:math:`\\lVert\\nabla L(\\theta) + \\lambda\\theta\\rVert` on the objective's full data.

    ``objective`` is an :class:`eoslab.curvature.objective.Objective`; ``weight_decay`` adds the
    gradient :math:`\\lambda\\theta` of :math:`\\tfrac\\lambda2\\lVert\\theta\\rVert^2` (SGD's
    coupled weight decay), so the norm is that of what SGD descends.
    """
    if not (isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay)
            and weight_decay >= 0):
        raise ValueError(f"weight_decay={weight_decay!r} is not allowed; use a number >= 0")
    params = objective.params() if params is None else params
    grads = torch.func.grad(objective)(params)
    total = sum(float((g + weight_decay * params[n]).pow(2).sum()) for n, g in grads.items())
    return math.sqrt(total)


def quadratic_stationary_variance(lr: float, curvature: float, noise_std: float) -> float:
    """:math:`v = \\eta\\sigma^2/(a(2 - \\eta a))`, the invariant variance of SGD on a quadratic.

    The quadratic is :math:`\\tfrac a2\\theta^2` with gradient noise :math:`\\sigma`; the chain
    has an invariant law only for :math:`0 < \\eta a < 2`.

    >>> round(quadratic_stationary_variance(0.1, 1.0, 1.0), 12)   # 0.1 / 1.9
    0.052631578947
    """
    if not (lr > 0 and curvature > 0 and lr * curvature < 2):
        raise ValueError(f"lr={lr!r}, curvature={curvature!r}: the chain has an invariant law "
                         "only for lr > 0, curvature > 0 and lr * curvature < 2")
    return lr * noise_std ** 2 / (curvature * (2 - lr * curvature))


def quadratic_sgd_chain(dim: int, lr: float, curvature: float, noise_std: float, steps: int,
                        *, start: float = 0.0, seed: int = 0, record_every: int = 1
                        ) -> torch.Tensor:
    """``(T, dim)`` snapshots of SGD on :math:`\\tfrac a2\\lVert\\theta\\rVert^2` with noise.

    The gradient noise is :math:`\\mathcal N(0, \\sigma^2)` per coordinate, the start
    :math:`\\theta_0 =` ``start`` (float64; row ``j`` is step ``j * record_every``).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} is not allowed; use an integer >= 1")
    gen = torch.Generator().manual_seed(int(seed))
    theta = torch.full((dim,), float(start), dtype=torch.float64)
    out = [theta.clone()]
    for t in range(steps):
        noise = torch.randn(dim, generator=gen, dtype=torch.float64)
        theta = theta - lr * (curvature * theta + noise_std * noise)
        if (t + 1) % record_every == 0:
            out.append(theta.clone())
    return torch.stack(out)


class WeightStatsProbe:
    """Gradient norm, movement and distribution of the weights during :func:`eoslab.core.train.fit`.

    Args:
        every: run at steps divisible by this (the window :math:`\\Delta` is the gap
            between two calls).
        weight_decay: :math:`\\lambda` of the optimiser's coupled weight decay, included in
            the full gradient (:func:`full_gradient_norm`).
        track: how many individual coordinates to follow (chosen at random with ``seed``).
        snapshot_every: keep the whole weight vector every this many steps (for histograms);
            ``None``: never.

    The row gets ``grad_full`` (full-batch gradient norm of the regularised loss),
    ``travel_rms`` (:math:`\\lVert\\theta_t - \\theta_0\\rVert/\\sqrt d`) and, from the
    second call on, ``move_rms``, ``w1``, ``ks`` and ``ratio`` of :func:`window_stats`.
    The tracked coordinates go to :attr:`tracks` (rows ``step``, ``coord``, ``value``) and
    the snapshots to :attr:`snapshots` (step -> numpy vector), not to the history.
    """

    def __init__(self, every: int, *, weight_decay: float = 0.0, track: int = 5,
                 snapshot_every: int | None = None, seed: int = 0):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r} is not allowed; use an integer >= 1")
        if snapshot_every is not None and (not isinstance(snapshot_every, int)
                                           or snapshot_every < 1):
            raise ValueError(f"snapshot_every={snapshot_every!r} is not allowed; use an "
                             "integer >= 1 or None")
        self.every, self.weight_decay, self.track = every, weight_decay, track
        self.snapshot_every, self.seed = snapshot_every, seed
        self.first: torch.Tensor | None = None
        self.prev: torch.Tensor | None = None
        self.coords: torch.Tensor | None = None
        self.tracks: list[dict] = []
        self.snapshots: dict[int, np.ndarray] = {}

    def __call__(self, ctx) -> dict:
        flat = flat_weights(ctx.model).double().cpu()
        if self.first is None:
            self.first = flat.clone()
            gen = torch.Generator().manual_seed(self.seed)
            self.coords = torch.randperm(flat.numel(), generator=gen)[:self.track]
        row = {"grad_full": full_gradient_norm(ctx.objective, weight_decay=self.weight_decay),
               "travel_rms": float((flat - self.first).norm()) / math.sqrt(flat.numel())}
        if self.prev is not None:
            row.update(window_stats(self.prev, flat))
        self.prev = flat
        self.tracks += [{"step": ctx.step, "coord": int(i), "value": float(flat[i])}
                        for i in self.coords]
        if self.snapshot_every is not None and ctx.step % self.snapshot_every == 0:
            self.snapshots[ctx.step] = flat.numpy().copy()
        return row
