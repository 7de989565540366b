"""Chapter 06's noise arm on the network: small-step GD with injected isotropic noise.

Mohtashami, Jaggi & Stich (ICML 2023, arXiv 2205.15142) argue that the benefit of a large
step size is not the randomness that comes with it in SGD.  On the digits net,
:func:`noisy_run` trains full-batch GD at the *smallest* step size of the preset with
isotropic Gaussian noise added to every gradient,

.. math::

    \\theta_{t+1} = \\theta_t - \\eta\\,\\bigl(\\nabla L(\\theta_t) + \\sigma\\,\\xi_t\\bigr),
    \\qquad \\xi_t \\sim N(0, I),

and tracks its sharpness, to set next to plain GD at the small and the large step size
(:func:`noise_arm`).  Isotropic noise is *not* SGD's noise: near a minimum SGD's noise
covariance is anisotropic, aligned with the Hessian (Zhu, Wu, Yu, Wu, Ma, ICML 2019,
arXiv 1803.00195; Wu, Wang, Su, NeurIPS 2022, see chapter 09), and that alignment is what
lets it escape sharp minima; this arm tests only the isotropic kind the paper injects.

Example:
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(3))
    >>> opt = NoisyGD([w], lr=0.5, sigma=0.0)
    >>> w.grad = torch.ones(3)
    >>> _ = opt.step()
    >>> w.detach().tolist()
    [-0.5, -0.5, -0.5]
"""

from __future__ import annotations

import math

import torch

from eoslab.core.train import fit
from eoslab.curvature.sharpness import SharpnessProbe

__all__ = ["NoisyGD", "noise_arm", "noisy_run"]


class NoisyGD(torch.optim.SGD):
    """Plain GD whose gradient gets :math:`\\sigma\\,\\xi`, :math:`\\xi \\sim N(0, I)`, per step.

    Args:
        params: the parameters.
        lr: :math:`\\eta`.
        sigma: :math:`\\sigma \\ge 0`.
        seed: the noise generator's seed.
    """

    def __init__(self, params, lr: float, sigma: float, seed: int = 0):
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma={sigma!r} is not allowed; use a finite number >= 0")
        super().__init__(params, lr=lr)
        self.sigma = float(sigma)
        self.gen = torch.Generator().manual_seed(int(seed))

    @torch.no_grad()
    def step(self, closure=None):
        """Add the noise to every gradient, then take the SGD step."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and self.sigma > 0:
                    noise = torch.randn(p.shape, generator=self.gen, dtype=p.dtype)
                    p.grad.add_(noise.to(p.device) * self.sigma)
        return super().step(closure)


def noisy_run(net, lr: float, sigma: float, steps: int, every: int, stop=None) -> list[dict]:
    """Rows ``{lr, noise, step, loss, sharpness}`` of noisy GD on ``net`` (a NetSpec)."""
    data, model = net.build()
    run = fit(model, data, net.loss, NoisyGD(model.parameters(), lr, sigma), steps=steps,
              record_every=every, probes=[SharpnessProbe(every, tol=1e-2)], stop=stop,
              eval_test=False)
    return [{"lr": lr, "noise": sigma, "step": int(h["step"]), "loss": float(h["loss"]),
             "sharpness": float(h["sharpness"])}
            for h in run.history if h.get("sharpness") is not None]


def noise_arm(net_rows: list[dict]) -> dict | None:
    """Sharpness of small-step GD, noisy small-step GD and large-step GD at one train loss.

    The loss ``level`` is the largest final loss of the three; each run's sharpness is read
    where its loss first falls to it.  ``None`` without a noisy run.

    >>> rows = [{"lr": 0.1, "noise": 0.0, "step": 0, "loss": 0.5, "sharpness": 3.0},
    ...         {"lr": 0.1, "noise": 0.1, "step": 0, "loss": 0.5, "sharpness": 3.5},
    ...         {"lr": 1.0, "noise": 0.0, "step": 0, "loss": 0.4, "sharpness": 2.0}]
    >>> noise_arm(rows)
    {'level': 0.5, 'small': 3.0, 'noisy': 3.5, 'large': 2.0, 'noise': 0.1}
    """
    noisy = [r for r in net_rows if r.get("noise", 0) > 0]
    plain = [r for r in net_rows if r.get("noise", 0) == 0]
    if not noisy or not plain:
        return None
    small_lr, large_lr = min(r["lr"] for r in plain), max(r["lr"] for r in plain)
    runs = {"small": [r for r in plain if r["lr"] == small_lr], "noisy": noisy,
            "large": [r for r in plain if r["lr"] == large_lr]}
    runs = {k: sorted(v, key=lambda r: r["step"]) for k, v in runs.items()}
    level = max(v[-1]["loss"] for v in runs.values())
    out = {"level": level}
    out.update({k: next(r["sharpness"] for r in v if r["loss"] <= level)
                for k, v in runs.items()})
    out["noise"] = noisy[0]["noise"]
    return out
