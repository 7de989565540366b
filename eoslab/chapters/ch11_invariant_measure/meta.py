"""Presets of chapter 11, the invariant-measure view of SGD.

Zhang, Li, Sra, Jadbabaie, ICML 2022, arXiv 2110.06256: SGD at a fixed step size with
weight decay, long enough for the loss to settle, with the weights' movement and
distribution measured every ``record_every`` steps and whole snapshots kept every
``snapshot_every`` steps (``track`` random coordinates are followed).
``lr``, ``batch_size`` and ``weight_decay`` are the sliders.  ``lr_edge`` is the step size
at the edge of stability at initialisation, :math:`2/(\\lambda_{\\max}(\\nabla^2
L(\\theta_0)) + \\lambda)` (full-batch Hessian; :math:`\\lambda` = ``weight_decay``); the
step-size slider is laid out around it (``None``: not measured, the CIFAR-10 preset).

Example:
    >>> PRESETS["quick"].net.n_train, PRESETS["quick"].batch_size
    (200, 16)
"""

from __future__ import annotations

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset
from eoslab.core.netspec import NetSpec

__all__ = ["InvariantMeasurePreset", "PRESETS"]

NUMBER = "11"
SLUG = "invariant_measure"


@dataclass(frozen=True, kw_only=True)
class InvariantMeasurePreset(ChapterPreset):
    """Chapter 11's settings (module docs)."""

    NUMBER = "11"
    net: NetSpec
    steps: int
    record_every: int
    snapshot_every: int
    lr: float = 0.3
    batch_size: int = 16
    weight_decay: float = 0.01
    track: int = 5
    seed: int = 0
    lr_edge: float | None = None
    lr_edge_formula = "2/(λ₀ + λ)"  # as the edge marker names it


PRESETS = {
    "quick": InvariantMeasurePreset(
        name="quick", label="quick: 200 digits, 1500 SGD steps, ~5 s on a CPU",
        net=NetSpec(n_train=200, width=32), steps=1500, record_every=100, snapshot_every=300,
        lr_edge=0.699),
    "default": InvariantMeasurePreset(
        name="default", label="default: 500 digits, 5000 SGD steps, ~20 s on a CPU",
        net=NetSpec(n_train=500, width=32), steps=5000, record_every=200, snapshot_every=1000,
        lr_edge=0.680),
    "paper": InvariantMeasurePreset(
        name="paper", label="paper-like: CIFAR-10 5k, a small CNN with cross-entropy (not "
                            "the paper's nets and data), 50k SGD steps, ~30 min on a GPU "
                            "(estimate)",
        needs=CIFAR_NEEDS,
        net=NetSpec(dataset="cifar10-5k", n_train=None, model="cnn", width=32, loss="ce"),
        lr=0.05, batch_size=128, weight_decay=5e-4, steps=50000, record_every=1000,
        snapshot_every=10000),
}
