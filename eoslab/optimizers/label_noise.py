"""Label-noise SGD: each step's targets get fresh Gaussian noise.

Damian, Ma, Lee, "Label Noise SGD Provably Prefers Flat Global Minimizers", NeurIPS 2021
(arXiv 2106.06530).  Each step draws :math:`\\xi_i \\sim \\mathcal N(0,\\sigma^2)` for every
target coordinate of its batch and steps the base optimiser on

.. math::

    \\hat L_t(\\theta) = \\frac1B \\sum_{i \\in B_t} \\ell(f_\\theta(x_i), y_i + \\xi_{t,i}),

so the noise is fresh each step; to leading order it drives the iterate along the zero-loss
manifold towards smaller :math:`\\operatorname{tr}\\nabla^2 L` (the chapter 10 docs have
the maths).  Targets must be real-valued (loss ``mse``: one-hot classes).

Usage: ``LabelNoiseSGD(torch.optim.SGD(model.parameters(), lr=0.1), sigma=0.1)`` in
:func:`eoslab.core.train.fit` (it sets ``needs_closure``), or ``optimizer="label-noise"``
with ``optimizer_options={"sigma": ...}`` in a :class:`~eoslab.core.config.TrainConfig`.
"""

from __future__ import annotations

import math

import torch

__all__ = ["LabelNoiseSGD"]


def _check_sigma(sigma) -> float:
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not (
            math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"sigma={sigma!r} is not allowed; the label-noise std must be a "
                         "finite number >= 0")
    return float(sigma)


class LabelNoiseSGD(torch.optim.Optimizer):
    """Steps ``base`` with the gradient at freshly noised targets (module docs).

    Args:
        base: the optimiser that owns the parameters, e.g. ``torch.optim.SGD``.
        sigma: std of the Gaussian noise added to every target coordinate; ``0`` is
            exactly ``base``.
        seed: seed of the noise generator (CPU; noise is moved to the targets' device).

    In :func:`eoslab.core.train.fit` the closure re-evaluates the batch at ``y + xi``
    (``needs_closure = True``), so the noise is fresh each step and independent of the
    minibatch order.  Targets must be real-valued (loss ``mse``, one-hot classes).
    """

    needs_closure = True

    def __init__(self, base: torch.optim.Optimizer, sigma: float = 0.1, *, seed: int = 0):
        if not isinstance(base, torch.optim.Optimizer):
            raise ValueError(  # noqa: TRY004 - the project reports bad inputs as ValueError
                f"base={base!r} is not allowed; give a torch.optim.Optimizer")
        self.base, self.sigma = base, _check_sigma(sigma)
        self.generator = torch.Generator().manual_seed(int(seed))
        super().__init__(base.param_groups, base.defaults)
        self.param_groups, self.state, self.defaults = base.param_groups, base.state, base.defaults

    def noise(self, like: torch.Tensor) -> torch.Tensor:
        """Fresh :math:`\\sigma\\,\\mathcal N(0, 1)` noise shaped like the targets ``like``."""
        z = torch.randn(like.shape, generator=self.generator, dtype=torch.float64)
        return (self.sigma * z).to(device=like.device, dtype=like.dtype)

    def step(self, closure=None):
        """One step of ``base`` on the noised batch; returns the noisy batch loss."""
        if self.sigma == 0:
            return self.base.step()
        if closure is None:
            raise ValueError("LabelNoiseSGD.step needs the batch closure (closure=None given); "
                             "train it with eoslab.core.train.fit")
        y = closure.y
        if not y.is_floating_point():
            raise ValueError(f"label noise needs real-valued targets; got {y.dtype} class "
                             "indices (use loss='mse', which makes one-hot targets)")
        value = closure(closure.x, y + self.noise(y))
        self.base.step()
        return value
