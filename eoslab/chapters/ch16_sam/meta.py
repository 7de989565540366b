"""Presets of chapter 16, SAM.

Foret et al., ICLR 2021 (arXiv 2010.01412); Andriushchenko and Flammarion, ICML 2022
(arXiv 2206.06232); Long and Bartlett (arXiv 2309.12488).

Example:
    >>> PRESETS["quick"].full_batch.rho_ratios, PRESETS["quick"].minibatch.m_values
    ((0.0, 1.0), (0, 32, 8))
"""

from __future__ import annotations

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset
from eoslab.core.netspec import NetSpec

NUMBER = "16"
SLUG = "sam"


@dataclass(frozen=True, kw_only=True)
class FullBatch:
    """Full-batch SAM with radius ``rho`` times each of ``rho_ratios`` (0: GD).

    Each run takes ``steps`` steps, measures the sharpness every ``sharpness_every`` steps
    and records a row every ``record_every``.
    """

    rho_ratios: tuple[float, ...] = (0.0, 0.5, 1.0)
    steps: int
    sharpness_every: int
    record_every: int = 10


@dataclass(frozen=True, kw_only=True)
class Minibatch:
    """Minibatch SAM for m-sharpness: one run per ``m`` of ``m_values`` (0: plain SGD).

    Radius ``rho``, step size ``lr``, batches of ``batch_size``, ``steps`` steps each.
    """

    m_values: tuple[int, ...]
    rho: float
    lr: float = 0.2
    batch_size: int = 64
    steps: int


@dataclass(frozen=True, kw_only=True)
class SAMPreset(ChapterPreset):
    """Chapter 16's settings.

    ``lr`` and ``rho``, the step size and radius of the full-batch runs, are the app's
    controls; ``net`` is the data and the network of every run. ``lr_edge`` is
    :math:`2/\\lambda_0`, GD's stability threshold at the initialisation (``None`` where not
    computed: the paper preset's CIFAR-10 files are not installed by default).
    """

    NUMBER = "16"
    lr: float
    rho: float
    lr_edge: float | None = None
    lr_edge_formula = "2/λ₀"
    net: NetSpec
    full_batch: FullBatch
    minibatch: Minibatch


PRESETS = {
    "quick": SAMPreset(
        name="quick", label="quick: 200 digits, GD vs one SAM radius, ~15 s on a CPU",
        lr=0.4, rho=0.05, lr_edge=0.828, net=NetSpec(n_train=200, width=50, device="cpu"),
        full_batch=FullBatch(rho_ratios=(0.0, 1.0), steps=200, sharpness_every=20),
        minibatch=Minibatch(m_values=(0, 32, 8), rho=0.1, batch_size=32, steps=100)),
    "default": SAMPreset(
        name="default",
        label="default: 300 digits, 3 radii, 3 m, 20 s-4 min on a CPU",
        lr=0.4, rho=0.1, lr_edge=0.693, net=NetSpec(n_train=300, width=100, device="cpu"),
        full_batch=FullBatch(steps=600, sharpness_every=20),
        minibatch=Minibatch(m_values=(0, 64, 16, 8), rho=0.1, steps=400)),
    "paper": SAMPreset(
        name="paper",
        label="paper-like: CIFAR-10 5k, fc-tanh, ~30 min GPU (estimate)",
        needs=CIFAR_NEEDS, lr=2 / 30, rho=0.05,
        net=NetSpec(dataset="cifar10-5k", n_train=None, width=200, device="cpu"),
        full_batch=FullBatch(steps=5000, sharpness_every=50),
        minibatch=Minibatch(m_values=(0, 128, 32, 8), rho=0.05, lr=0.05, batch_size=128,
                            steps=5000)),
}
