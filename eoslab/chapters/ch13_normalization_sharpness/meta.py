"""Presets of chapter 13, normalisation and sharpness.

Lyu, Li, Arora, NeurIPS 2022, arXiv 2206.07085; Santurkar, Tsipras, Ilyas, Madry,
NeurIPS 2018, arXiv 1805.11604.  Three full-batch GD runs of ``steps`` steps at one step
size: the BatchNorm MLP with weight decay, the same without weight decay, and the same MLP
without BatchNorm (``net.init="kaiming"``, so the two start with signals of the same
size).  The sharpness is probed every ``sharpness_every`` steps, the smoothness along the
step (at the step-size ``multiples``) every ``smooth_every``.  ``lr`` and ``wd`` are the
sliders.

Example:
    >>> p = PRESETS["quick"]
    >>> p.net.width, p.data.n_train, p.multiples[-1]
    (32, 200, 4.0)
"""

from __future__ import annotations

from dataclasses import dataclass

from eoslab.chapters.presets import ChapterPreset

__all__ = ["DataSpec", "MLPSpec", "NormalizationPreset", "PRESETS"]

NUMBER = "13"
SLUG = "normalization_sharpness"


@dataclass(frozen=True, kw_only=True)
class DataSpec:
    """The data and the loss (``eoslab.core.data.load_dataset``)."""

    n_train: int | None
    dataset: str = "digits"
    loss: str = "mse"
    dtype: str = "float32"
    device: str | None = None


@dataclass(frozen=True, kw_only=True)
class MLPSpec:
    """The :class:`~eoslab.curvature.scale_invariance.ScaleInvariantMLP` of every run."""

    width: int
    depth: int = 2
    out_scale: float = 1.0
    init: str = "kaiming"
    model_seed: int = 0


@dataclass(frozen=True, kw_only=True)
class NormalizationPreset(ChapterPreset):
    """Chapter 13's settings (module docs)."""

    NUMBER = "13"
    data: DataSpec
    net: MLPSpec
    steps: int
    sharpness_every: int
    smooth_every: int
    lr: float = 0.5
    wd: float = 0.01
    multiples: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    record_every: int = 10


_CIFAR = ("torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
          "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
          "or point EOSLAB_DATA at a folder holding cifar-10-batches-py")

PRESETS = {
    "quick": NormalizationPreset(
        name="quick",
        label="quick: 200 digits, MLP 32x2, 3 runs of 500 GD steps, ~15 s on a CPU",
        data=DataSpec(n_train=200), net=MLPSpec(width=32), steps=500, sharpness_every=50,
        smooth_every=20),
    "default": NormalizationPreset(
        name="default",
        label="default: 300 digits, MLP 64x2, 3 runs of 1500 GD steps, ~1 min on a CPU",
        data=DataSpec(n_train=300), net=MLPSpec(width=64), steps=1500, sharpness_every=50,
        smooth_every=20),
    "paper": NormalizationPreset(
        name="paper",
        label="paper-like: CIFAR-10 5k, MLP 512x3 with and without BatchNorm, "
              "10k full-batch GD steps each (Lyu et al. and Santurkar et al. use "
              "ResNets / VGG on CIFAR-10), ~30 min on a GPU",
        needs=_CIFAR, data=DataSpec(dataset="cifar10-5k", n_train=None),
        net=MLPSpec(width=512, depth=3), lr=0.2, steps=10000, sharpness_every=200,
        smooth_every=100, record_every=50),
}
