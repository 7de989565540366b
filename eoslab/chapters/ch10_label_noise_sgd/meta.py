"""Presets of chapter 10, label-noise SGD (Damian, Ma, Lee, NeurIPS 2021, arXiv 2106.06530).

``uv``: the exact product model :math:`f = uv` fitted to :math:`y = 1`, started at
``uv.starts`` (points on the hyperbola :math:`uv = 1`, from balanced to 6:1 unbalanced).
``net``: ``warmup`` steps of plain SGD (batches of ``batch_size``) to reach the zero-loss
manifold, then ``steps`` more steps twice from the same point, with and without label noise,
with
:math:`\\operatorname{tr}\\nabla^2 L` estimated by Hutch++ (``trace_m`` products) every
``record_every`` steps.  ``lr`` and ``sigma`` are the sliders.

Example:
    >>> PRESETS["quick"].net.width, PRESETS["quick"].uv.steps
    (32, 3000)
"""

from __future__ import annotations

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset
from eoslab.core.netspec import NetSpec

__all__ = ["LabelNoisePreset", "PRESETS", "ProductToy"]

NUMBER = "10"
SLUG = "label_noise_sgd"

_STARTS = ((2.5, 0.4), (2.0, 0.5), (1.5, 1 / 1.5), (0.4, 2.5), (0.5, 2.0), (-2.5, -0.4),
           (-0.5, -2.0))


@dataclass(frozen=True, kw_only=True)
class ProductToy:
    """The product model :math:`f = uv` fitted to ``target`` from ``starts``.

    Attributes:
        steps: label-noise GD steps; ``record``: recording cadence.
    """

    steps: int
    target: float = 1.0
    starts: tuple[tuple[float, float], ...] = _STARTS
    record: int = 25


@dataclass(frozen=True, kw_only=True)
class LabelNoisePreset(ChapterPreset):
    """Chapter 10's settings (module docs); ``lr`` and ``sigma`` are the sliders."""

    NUMBER = "10"
    uv: ProductToy
    net: NetSpec
    batch_size: int
    warmup: int
    steps: int
    record_every: int
    lr: float = 0.2
    sigma: float = 0.3
    trace_m: int = 30
    seed: int = 0

    lr_edge_formula = "2/λ₀ of f = uv"

    @property
    def lr_edge(self) -> float:
        """The toy's edge at its starts, :math:`2/\\lambda_0`.

        :math:`\\lambda_0 = \\max_i (u_i^2 + v_i^2)` is the top Hessian eigenvalue of
        :math:`\\tfrac12(uv - y)^2` on :math:`uv = y` at the sharpest start.
        """
        return 2.0 / max(u * u + v * v for u, v in self.uv.starts)


PRESETS = {
    "quick": LabelNoisePreset(
        name="quick", label="quick: f = uv and 100 digits, ~10 s on a CPU",
        uv=ProductToy(steps=3000), net=NetSpec(n_train=100, width=32), batch_size=10,
        warmup=300, steps=600, record_every=100, trace_m=21),
    "default": LabelNoisePreset(
        name="default", label="default: f = uv and 200 digits, 2000 + 2 x 4000 SGD steps, "
                              "~40 s on a busy 2-core CPU",
        uv=ProductToy(steps=6000), net=NetSpec(n_train=200, width=50), batch_size=20,
        warmup=2000, steps=4000, record_every=200),
    "paper": LabelNoisePreset(
        name="paper", label="paper-like: CIFAR-10 5k, a small CNN (not the paper's net "
                            "and data), 5k + 2 x 20k SGD steps, ~1 h on a GPU (estimate)",
        needs=CIFAR_NEEDS, lr=0.05, sigma=0.2,
        uv=ProductToy(steps=20000),
        net=NetSpec(dataset="cifar10-5k", n_train=None, model="cnn", width=32),
        batch_size=128,
        warmup=5000, steps=20000, record_every=1000, trace_m=60),
}
