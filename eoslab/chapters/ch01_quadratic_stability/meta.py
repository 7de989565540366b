"""Chapter 01 presets: gradient descent on a 2-D quadratic and its stability threshold.

The presets differ only in the number of steps: everything is exact and instant.
"""

from dataclasses import dataclass

from eoslab.chapters.presets import ChapterPreset

NUMBER = "01"
SLUG = "quadratic_stability"


@dataclass(frozen=True, kw_only=True)
class QuadraticPreset(ChapterPreset):
    """GD / heavy ball from ``start`` on the quadratic with curvatures ``lambda1, lambda2``.

    Attributes:
        lambda1, lambda2: the Hessian's eigenvalues (the two curvature sliders).
        angle: rotation of the first eigenvector from the x axis, in degrees.
        lr: the step size eta; ``momentum``: the heavy-ball beta.
        start: the first iterate :math:`w_0`; ``steps``: how many steps are taken.
    """

    NUMBER = "01"
    lambda1: float = 2.0
    lambda2: float = 0.5
    angle: float = 30.0
    lr: float = 0.8
    momentum: float = 0.0
    start: tuple[float, float] = (1.5, 1.0)
    steps: int

    @property
    def eigenvalues(self) -> tuple[float, float]:
        """``(lambda1, lambda2)``."""
        return (self.lambda1, self.lambda2)

    lr_edge_formula = "(2+2β)/λ_max"

    @property
    def lr_edge(self) -> float:
        """The stability edge :math:`(2 + 2\\beta)/\\lambda_{\\max}` of the preset's quadratic.

        GD (heavy ball) converges iff :math:`\\eta` is below it (Polyak 1964).
        """
        return (2 + 2 * self.momentum) / max(self.lambda1, self.lambda2)


PRESETS = {
    "quick": QuadraticPreset(name="quick", steps=30, label="quick: 30 steps, exact (instant)"),
    "default": QuadraticPreset(name="default", steps=60,
                               label="default: 60 steps, exact (instant)"),
    "paper": QuadraticPreset(name="paper", steps=300,
                             label="paper: 300 steps on the theory's exact quadratic (instant)"),
}
