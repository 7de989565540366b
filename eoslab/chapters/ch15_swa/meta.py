"""Presets of chapter 15, SWA (Izmailov et al., UAI 2018, arXiv 1803.05407).

Example:
    >>> PRESETS["quick"].swa.start, PRESETS["quick"].sgd.steps, PRESETS["quick"].lr
    (400, 800, 0.3)
    >>> PRESETS["default"].lr < PRESETS["default"].lr_edge
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset, MomentumSGD
from eoslab.core.netspec import NetSpec

NUMBER = "15"
SLUG = "swa"


@dataclass(frozen=True, kw_only=True)
class Averaging:
    """SWA: the running mean of the iterates from step ``start`` on, every ``every`` steps."""

    start: int
    every: int


@dataclass(frozen=True, kw_only=True)
class Landscape:
    """The measurements around the averaged and the last weights.

    A ``grid`` x ``grid`` loss map of the plane through three iterates (``margin`` around
    them), 1-D slices of radius ``slice_radius`` at ``slice_points`` points, the flat width
    where the loss stays within ``width_rise`` of its centre, and the sharpness averaged
    over about ``sharpness_iterates`` of the iterates.
    """

    grid: int
    margin: float = 0.3
    slice_radius: float = 1.0
    slice_points: int = 21
    width_rise: float = 0.05
    sharpness_iterates: int = 5


@dataclass(frozen=True, kw_only=True)
class SWAPreset(ChapterPreset):
    """Chapter 15's settings; ``lr`` (the constant SGD step size) is the app's control.

    ``sgd`` is minibatch SGD at that constant step size, with momentum and weight decay.
    ``lr_edge`` is heavy-ball SGD's stability threshold at the initialisation,
    :math:`(2+2\\beta)/\\lambda_0` with :math:`\\beta` = ``sgd.momentum`` (``None`` where not
    computed: the paper preset's CIFAR-10 files are not installed by default).
    """

    NUMBER = "15"
    lr: float
    lr_edge: float | None = None
    lr_edge_formula = "(2+2β)/λ₀"
    net: NetSpec
    sgd: MomentumSGD
    swa: Averaging
    landscape: Landscape


PRESETS = {
    "quick": SWAPreset(
        name="quick", label="quick: 300 digits, 800 SGD steps, ~10 s on a CPU",
        lr=0.3, lr_edge=1.64, net=NetSpec(n_train=300, model="fc-relu", width=32, device="cpu"),
        sgd=MomentumSGD(steps=800, batch_size=32),
        swa=Averaging(start=400, every=20), landscape=Landscape(grid=11)),
    # default lr: at 0.2 and above the iterates of some initialisations drift between
    # regions of the basin and their average lands on a ridge (SWA worse than SGD);
    # 0.175 bounces on every initialisation tried and SWA beats SGD on each of them
    "default": SWAPreset(
        name="default",
        label="default: 500 digits, 2000 SGD steps, 3-40 s on a CPU",
        lr=0.175, lr_edge=1.62, net=NetSpec(n_train=500, model="fc-relu", width=32, device="cpu"),
        sgd=MomentumSGD(steps=2000, batch_size=32),
        swa=Averaging(start=1000, every=20), landscape=Landscape(grid=21)),
    "paper": SWAPreset(
        name="paper", label="paper-like: CIFAR-10 5k, small CNN, ~20 min GPU (estimate)",
        needs=CIFAR_NEEDS, lr=0.05,
        net=NetSpec(dataset="cifar10-5k", n_train=None, model="cnn", width=32, loss="ce",
                    device="cpu"),
        sgd=MomentumSGD(steps=20000, batch_size=128),
        swa=Averaging(start=12000, every=200), landscape=Landscape(grid=31)),
}
