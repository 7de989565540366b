"""Presets of chapter 14, mode connectivity (Garipov et al., NeurIPS 2018, arXiv 1802.10026).

Example:
    >>> PRESETS["quick"].net.width, PRESETS["quick"].fge.cycles, PRESETS["quick"].kind
    (16, 4, 'bezier')
"""

from __future__ import annotations

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset, MomentumSGD
from eoslab.core.netspec import NetSpec

NUMBER = "14"
SLUG = "mode_connectivity"


@dataclass(frozen=True, kw_only=True)
class CurveSpec:
    """The trained curve.

    ``steps`` of SGD on its bend, ``path_points`` values of ``t`` along the line and the
    curve, a ``grid`` x ``grid`` loss map of the plane that holds them.
    """

    steps: int
    path_points: int = 21
    grid: int


@dataclass(frozen=True, kw_only=True)
class FGESpec:
    """Fast geometric ensembling.

    ``cycles`` triangular cycles of ``cycle`` steps (even), peaking at ``lr_ratio`` times
    the step size of the slider.
    """

    cycle: int
    cycles: int
    lr_ratio: float = 5.0


@dataclass(frozen=True, kw_only=True)
class ModeConnectivityPreset(ChapterPreset):
    """Chapter 14's settings.

    ``lr`` (the step size of every stage) and ``kind`` (``"bezier"`` or ``"polychain"``)
    are the app's controls; ``net`` is the data and the network of both minima (their
    initialisations have seeds ``net.model_seed`` and the next), ``sgd`` their training
    (``steps`` for each; the curve's bend and FGE use the same batch size and momentum, FGE
    the same weight decay). ``lr_edge`` is heavy-ball SGD's stability threshold at the
    initialisation, :math:`(2+2\\beta)/\\lambda_0` with :math:`\\beta` = ``sgd.momentum``
    (``None`` where not computed: the paper preset's CIFAR-10 files are not installed).
    """

    NUMBER = "14"
    lr: float
    lr_edge: float | None = None
    lr_edge_formula = "(2+2β)/λ₀"
    kind: str = "bezier"
    net: NetSpec
    sgd: MomentumSGD
    curve: CurveSpec
    fge: FGESpec


PRESETS = {
    "quick": ModeConnectivityPreset(
        name="quick", label="quick: 500 digits, width 16, ~10 s on a CPU",
        lr=0.1, lr_edge=9.68,
        net=NetSpec(n_train=500, model="fc-relu", width=16, loss="ce", device="cpu"),
        sgd=MomentumSGD(steps=300, batch_size=64),
        curve=CurveSpec(steps=300, grid=13), fge=FGESpec(cycle=40, cycles=4)),
    "default": ModeConnectivityPreset(
        name="default",
        label="default: 1000 digits, width 32, 5-30 s on a CPU",
        lr=0.1, lr_edge=10.3,
        net=NetSpec(n_train=1000, model="fc-relu", width=32, loss="ce", device="cpu"),
        sgd=MomentumSGD(steps=600, batch_size=64),
        curve=CurveSpec(steps=800, grid=25), fge=FGESpec(cycle=60, cycles=6)),
    "paper": ModeConnectivityPreset(
        name="paper", label="paper-like: CIFAR-10 5k, small CNN, ~20 min GPU (estimate)",
        needs=CIFAR_NEEDS, lr=0.05,
        net=NetSpec(dataset="cifar10-5k", n_train=None, model="cnn", width=32, loss="ce",
                    device="cpu"),
        sgd=MomentumSGD(steps=8000, batch_size=128),
        curve=CurveSpec(steps=8000, grid=31), fge=FGESpec(cycle=400, cycles=8)),
}
