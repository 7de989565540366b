"""Presets of chapter 13, normalisation and sharpness.

Lyu, Li, Arora, NeurIPS 2022, arXiv 2206.07085; Santurkar, Tsipras, Ilyas, Madry,
NeurIPS 2018, arXiv 1805.11604.  Three full-batch GD runs of ``steps`` steps at one step
size: the BatchNorm MLP with weight decay, the same without weight decay, and the same MLP
without BatchNorm (``si_mlp.init="kaiming"``, so the two start with signals of the same
size).  The sharpness is probed every ``sharpness_every`` steps, the smoothness along the
step (at the step-size ``multiples``) every ``smooth_every``.  ``lr`` and ``wd`` are the
sliders.  ``lr_edge`` is :math:`2/\\lambda_{\\max}` of the BatchNorm net at initialisation
(the Hessian of the loss GD trains, batch statistics): above it GD starts beyond the edge
of stability; the step-size slider is laid out around it (``None``: not measured, the
CIFAR-10 preset).

Example:
    >>> p = PRESETS["quick"]
    >>> p.net.width, p.net.n_train, p.multiples[-1]
    (32, 200, 4.0)
"""

from __future__ import annotations

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset
from eoslab.core.netspec import NetSpec

__all__ = ["NormalizationPreset", "PRESETS", "ScaleInvariantOptions"]

NUMBER = "13"
SLUG = "normalization_sharpness"


@dataclass(frozen=True, kw_only=True)
class ScaleInvariantOptions:
    """The :class:`~eoslab.curvature.scale_invariance.ScaleInvariantMLP`'s own arguments.

    ``net`` (model ``"si-mlp"``) names its width, depth and seed; every run shares these,
    the run without BatchNorm drops the normalisation.

    Attributes:
        out_scale: the scale of the fixed head.
        init: ``"kaiming"`` or ``"torch"``, the initialisation of the trained layers.
    """

    out_scale: float = 1.0
    init: str = "kaiming"


@dataclass(frozen=True, kw_only=True)
class NormalizationPreset(ChapterPreset):
    """Chapter 13's settings (module docs)."""

    NUMBER = "13"
    net: NetSpec
    si_mlp: ScaleInvariantOptions = ScaleInvariantOptions()
    steps: int
    sharpness_every: int
    smooth_every: int
    lr: float = 0.5
    wd: float = 0.01
    multiples: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    record_every: int = 10
    lr_edge: float | None = None


PRESETS = {
    "quick": NormalizationPreset(
        name="quick",
        label="quick: 200 digits, MLP 32x2, 3 runs of 500 GD steps, ~15 s on a CPU",
        net=NetSpec(n_train=200, model="si-mlp", width=32), steps=500, sharpness_every=50,
        smooth_every=20, lr_edge=0.332),
    "default": NormalizationPreset(
        name="default",
        label="default: 300 digits, MLP 64x2, 3 runs of 1500 GD steps, ~1 min on a CPU",
        net=NetSpec(n_train=300, model="si-mlp", width=64), steps=1500, sharpness_every=50,
        smooth_every=20, lr_edge=0.345),
    "paper": NormalizationPreset(
        name="paper",
        label="paper-like: CIFAR-10 5k, MLP 512x3 with and without BatchNorm, "
              "10k full-batch GD steps each (Lyu et al. and Santurkar et al. use "
              "ResNets / VGG on CIFAR-10), ~30 min on a GPU (estimate)",
        needs=CIFAR_NEEDS,
        net=NetSpec(dataset="cifar10-5k", n_train=None, model="si-mlp", width=512, depth=3),
        lr=0.2, steps=10000, sharpness_every=200,
        smooth_every=100, record_every=50),
}
