"""Presets of chapter 09, which minima SGD can stay at.

Wu and Su, ICML 2023 (arXiv 2305.17490); Wu, Ma, E, NeurIPS 2018.
"""

from dataclasses import dataclass

from eoslab.chapters.ch09_sgd_stability.diagonal_net import DiagonalProblem
from eoslab.chapters.presets import ChapterPreset
from eoslab.core.netspec import NetSpec

NUMBER = "09"
SLUG = "sgd_stability"


@dataclass(frozen=True, kw_only=True)
class GDMinimum:
    """Full-batch GD from the net's initialisation, which finds the interpolating minimum.

    Attributes:
        lr: GD's step size.
        steps: GD's number of steps.
    """

    lr: float = 0.5
    steps: int


@dataclass(frozen=True, kw_only=True)
class SgdStabilityPreset(ChapterPreset):
    """Chapter 09's settings.

    GD (``minimum``) finds an interpolating minimum of ``net`` once per preset; SGD at the
    sliders' step size ``lr`` and batch size ``batch_size`` (and GD at ``lr``, for
    reference) then starts there for ``steps`` steps, recording every ``record_every``,
    its batches drawn with seed ``sgd_seed``.  ``batch_grid``: the batch sizes of the
    stability panel.  ``lr_edge`` is :math:`2/\\lambda_{\\max}` at GD's minimum, where
    SGD and GD start (``None`` where not computed): GD's stability threshold there, which
    scales the step-size slider.  ``norms`` is the second half's diagonal linear net
    (:class:`~eoslab.chapters.ch09_sgd_stability.diagonal_net.DiagonalProblem`), with its
    own grid of SGD step sizes.
    """

    NUMBER = NUMBER
    net: NetSpec
    minimum: GDMinimum
    lr: float = 0.5
    batch_size: int
    steps: int
    record_every: int
    sgd_seed: int = 0
    batch_grid: tuple[int, ...]
    lr_edge: float | None = None
    lr_edge_formula = "2/λ_max at GD's minimum"  # as the edge marker names it
    norms: DiagonalProblem = DiagonalProblem()


def _teacher(n_train: int, width: int) -> NetSpec:
    return NetSpec(dataset="teacher", n_train=n_train, width=width, depth=1, dtype="float64")


PRESETS = {
    "quick": SgdStabilityPreset(
        name="quick", label="quick: 32 teacher examples, width 32, ~10 s on a CPU",
        net=_teacher(32, 32), minimum=GDMinimum(steps=700), batch_size=4, steps=300,
        record_every=10, batch_grid=(1, 2, 4, 8, 16, 32), lr_edge=0.748),
    "default": SgdStabilityPreset(
        name="default",
        label="default: 64 teacher examples, width 64, ~20 s on an idle 2-core CPU",
        net=_teacher(64, 64), minimum=GDMinimum(steps=2000), batch_size=8, steps=1500,
        record_every=10, batch_grid=(1, 2, 4, 8, 16, 32, 64), lr_edge=0.599,
        norms=DiagonalProblem(lrs=(0.01, 0.02, 0.03, 0.04, 0.05, 0.06))),
    "paper": SgdStabilityPreset(
        name="paper",
        label="paper-like: 256 teacher examples, width 256 (a synthetic teacher, not the "
        "papers' data; the exact mean-square analysis works on a 256 x 256 Gram matrix; "
        "a 200-dimensional diagonal net), "
        "~10 min on a GPU (estimate)",
        net=_teacher(256, 256), minimum=GDMinimum(steps=5000), batch_size=16, steps=5000,
        record_every=20, batch_grid=(1, 2, 4, 8, 16, 32, 64, 128, 256), lr_edge=0.499,
        norms=DiagonalProblem(n=80, d=200, k=5, lrs=(0.01, 0.02, 0.03, 0.04, 0.05, 0.06),
                              sgd_steps=20000)),
}
