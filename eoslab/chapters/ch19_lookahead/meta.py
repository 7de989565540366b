"""Chapter 19 presets: Lookahead's fast and slow weights on a 2-D quadratic (exact, instant).

The quadratic has curvatures (1, 0.1), so GD alone is stable for eta < 2 and Lookahead
(alpha = 0.5, k = 5) for eta < 1 + 3**(1/5) = 2.2457
(:func:`eoslab.optimizers.lookahead.lookahead_threshold`). ``variance.seeds`` noisy runs
at ``variance.lr`` measure the noise floor of SGD alone against Lookahead's slow weights.
"""

from dataclasses import dataclass

from eoslab.chapters.presets import ChapterPreset

NUMBER = "19"
SLUG = "lookahead"


@dataclass(frozen=True, kw_only=True)
class VarianceSpec:
    """The noise-floor measurement: ``seeds`` runs of ``steps`` SGD steps from the minimum.

    Attributes:
        lr: the step size of the measurement (one both methods tolerate).
        noise: the gradient noise sigma.
        steps: steps per run; the second half is averaged.
        seeds: how many noisy runs (one batch).
    """

    lr: float = 1.0
    noise: float = 0.1
    steps: int
    seeds: int


@dataclass(frozen=True, kw_only=True)
class LookaheadPreset(ChapterPreset):
    """Lookahead(SGD) and SGD alone on one rotated quadratic.

    Attributes:
        eigenvalues: the Hessian's eigenvalues; ``angle``: its rotation in degrees.
        start: the first iterate; ``steps``: steps of the drawn paths.
        lr, alpha, k, noise: the sliders (step size, slow step, inner steps, gradient
            noise sigma of the drawn paths).
        momentum: the inner SGD's momentum.
        variance: the noise-floor measurement (:class:`VarianceSpec`).
    """

    NUMBER = "19"
    eigenvalues: tuple[float, float] = (1.0, 0.1)
    angle: float = 30.0
    start: tuple[float, float] = (1.5, 1.0)
    lr: float = 2.1
    alpha: float = 0.5
    k: int = 5
    momentum: float = 0.0
    noise: float = 0.0
    steps: int
    variance: VarianceSpec

    lr_edge_formula = "2/λ_max (GD)"

    @property
    def lr_edge(self) -> float:
        """GD alone's edge :math:`2/\\lambda_{\\max}`; Lookahead's own is past it."""
        return 2.0 / max(self.eigenvalues)


PRESETS = {
    "quick": LookaheadPreset(
        name="quick", steps=100, variance=VarianceSpec(steps=400, seeds=4),
        label="quick: 100 steps, 4 noisy seeds, exact (instant)",
    ),
    "default": LookaheadPreset(
        name="default", steps=200, variance=VarianceSpec(steps=2000, seeds=16),
        label="default: 200 steps (instant), 16 noisy seeds of 2000 steps (~30 s on a shared "
              "CPU)",
    ),
    "paper": LookaheadPreset(
        name="paper", steps=500, variance=VarianceSpec(steps=10000, seeds=64),
        label="paper: the noisy-quadratic analysis of Zhang et al. Sec. 3, 64 seeds of "
              "10000 steps (~30 s on a CPU)",
    ),
}
