"""Presets of chapter 12, periodic behaviour with BatchNorm and weight decay.

Lobacheva, Kodryan, Chirkova, Malinin, Vetrov, NeurIPS 2021, arXiv 2106.15739.  The net is
a scale-invariant MLP (bias-free Linear -> BatchNorm without affine parameters -> ReLU, a
fixed head scaled by ``si_mlp.out_scale``), trained by GD (``batch_size=None``) or SGD with
weight decay ``wd``; its norms are recorded every ``record_every`` steps and its sharpness
every ``sharpness_every``.  The period lasts about :math:`c/(\\eta\\lambda)` steps, so the
quick and default presets take :math:`\\eta\\lambda` = 0.02 and 0.01: a period is a few
hundred full-batch steps.  ``lr`` and ``wd`` are the sliders.

``lr_edge`` is the chapter's own stability threshold, :math:`2/\\lambda` with
:math:`\\lambda` = ``wd``: above it the weight-decay step :math:`w \\leftarrow
(1-\\eta\\lambda)w` alone overshoots and the norm blows up, whatever the loss.  The
threshold of GD at initialisation, :math:`2/\\lambda_{\\max}(\\nabla^2 L(w_0))`, is no
limit here (a scale-invariant net inflates :math:`\\lVert w\\rVert` and so lowers its
effective step; the presets' :math:`\\eta` = 0.1 is 6 to 17 times above it), so the
step-size slider is laid out around ``lr_edge``.

Example:
    >>> p = PRESETS["quick"]
    >>> round(p.lr * p.wd, 6), p.net.width, p.net.n_train
    (0.02, 32, 200)
"""

from __future__ import annotations

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset
from eoslab.core.netspec import NetSpec

__all__ = ["BNWeightDecayPreset", "PRESETS", "ScaleInvariantOptions"]

NUMBER = "12"
SLUG = "bn_wd_periodic"


@dataclass(frozen=True, kw_only=True)
class ScaleInvariantOptions:
    """The :class:`~eoslab.curvature.scale_invariance.ScaleInvariantMLP`'s own arguments.

    ``net`` (model ``"si-mlp"``) names its width, depth and seed; these are the rest.

    Attributes:
        norm: ``"batch"`` (BatchNorm without affine parameters) or another of its norms.
        out_scale: the scale of the fixed head.
        eps: the normalisation's :math:`\\epsilon`.
    """

    norm: str = "batch"
    out_scale: float = 10.0
    eps: float = 1e-5


@dataclass(frozen=True, kw_only=True)
class BNWeightDecayPreset(ChapterPreset):
    """Chapter 12's settings (module docs)."""

    NUMBER = "12"
    net: NetSpec
    si_mlp: ScaleInvariantOptions = ScaleInvariantOptions()
    lr: float
    wd: float
    steps: int
    batch_size: int | None = None
    record_every: int = 10
    sharpness_every: int = 10

    lr_edge_formula = "2/λ (weight decay λ)"  # as the edge marker names it

    @property
    def lr_edge(self) -> float:
        """:math:`2/\\lambda`: the step size at which weight decay's own step is unstable."""
        return 2.0 / self.wd if self.wd > 0 else float("inf")


PRESETS = {
    "quick": BNWeightDecayPreset(
        name="quick",
        label="quick: 200 digits, BN-MLP 32x2, eta*lambda = 0.02, ~10 s on a CPU",
        net=NetSpec(n_train=200, model="si-mlp", width=32, loss="cross-entropy"),
        lr=0.1, wd=0.2, steps=1500),
    "default": BNWeightDecayPreset(
        name="default",
        label="default: 1000 digits, BN-MLP 64x2, eta*lambda = 0.01, 6000 GD steps, "
              "~45 s on a CPU",
        net=NetSpec(n_train=1000, model="si-mlp", width=64, loss="cross-entropy"),
        lr=0.1, wd=0.1, steps=6000, sharpness_every=20),
    "paper": BNWeightDecayPreset(
        name="paper",
        label="paper-like: CIFAR-10 5k, scale-invariant BN-MLP 512x3, SGD batch 128, "
              "eta*lambda = 1e-3 (the paper: ConvNet / ResNet-18 on all of CIFAR-10), "
              "~15 min on a GPU (estimate)",
        needs=CIFAR_NEEDS,
        net=NetSpec(dataset="cifar10-5k", n_train=None, model="si-mlp", width=512, depth=3,
                    loss="cross-entropy"),
        lr=0.1, wd=0.01, batch_size=128, steps=40000, record_every=50, sharpness_every=500),
}
