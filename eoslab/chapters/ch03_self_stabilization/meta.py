"""Presets of chapter 03, self-stabilisation (Damian, Nichani, Lee, ICLR 2023, arXiv 2209.15594)."""

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset
from eoslab.core.netspec import NetSpec

NUMBER = "03"
SLUG = "self_stabilization"


@dataclass(frozen=True, kw_only=True)
class Projection:
    """The constrained trajectory's projection onto :math:`\\{S \\le 2/\\eta\\}`.

    Attributes:
        every: project (and record) every this many steps.
        eig_tol, eig_max_iter: the Lanczos solver's relative tolerance and iteration cap.
        rtol: accepted :math:`S(\\theta^\\dagger) \\le (1 + \\mathrm{rtol})\\,2/\\eta`.
        newton_steps: Newton steps along :math:`\\nabla S` per projection.
    """

    every: int
    eig_tol: float = 1e-3
    eig_max_iter: int = 30
    rtol: float = 1e-2
    newton_steps: int = 4


@dataclass(frozen=True, kw_only=True)
class SelfStabilizationPreset(ChapterPreset):
    """Chapter 03's settings: GD on ``net`` with the constrained trajectory beside it.

    GD runs at step size ``lr`` for ``steps`` steps, recording every ``record_every``; the
    constrained trajectory follows :class:`Projection`.  ``lr_edge`` is :math:`2/\\lambda_0`,
    the step size at the stability threshold at initialisation (:math:`\\lambda_0` the
    sharpness of ``net`` at its initial weights), ``None`` where not measured;
    ``tests/chapters/test_ch03_self_stabilization.py`` recomputes it.
    """

    NUMBER = NUMBER
    net: NetSpec
    lr: float
    steps: int
    record_every: int
    projection: Projection
    lr_edge: float | None = None


PRESETS = {
    "quick": SelfStabilizationPreset(
        name="quick", label="quick: 100 digits, width 50, one cycle, ~1-2 min on a CPU",
        net=NetSpec(n_train=100, width=50), lr=0.66, steps=84, record_every=2,
        projection=Projection(every=2), lr_edge=0.8081),
    "default": SelfStabilizationPreset(
        name="default", label="default: 100 digits, width 50, the first cycle and the hover "
        "after it, ~3-6 min on a CPU",
        net=NetSpec(n_train=100, width=50), lr=0.66, steps=150, record_every=1,
        projection=Projection(every=1), lr_edge=0.8081),
    "paper": SelfStabilizationPreset(
        name="paper", label="paper-like: CIFAR-10 5k, fc-tanh 200x2 (Cohen et al.'s setting, "
        "not matched to the paper's own runs), ~1 h on a GPU (estimate; a projection per step)",
        needs=CIFAR_NEEDS,
        net=NetSpec(dataset="cifar10-5k", n_train=None, width=200),
        lr=2 / 30, steps=3000, record_every=1, projection=Projection(every=1, eig_max_iter=50)),
}
