"""Chapter 01 presets: gradient descent on a 2-D quadratic and its stability threshold."""

from eoslab.chapters.presets import Preset

NUMBER = "01"
SLUG = "quadratic_stability"

PRESETS = {

    "quick": Preset("01", "quick", dict(eigenvalues=(2.0, 0.5), angle=30.0, lr=0.8,
                                        momentum=0.0, start=(1.5, 1.0), steps=30),
                    "quick: 30 steps, exact (instant)"),
    "default": Preset("01", "default", dict(eigenvalues=(2.0, 0.5), angle=30.0, lr=0.8,
                                            momentum=0.0, start=(1.5, 1.0), steps=60),
                      "default: 60 steps, exact (instant)"),
    "paper": Preset("01", "paper", dict(eigenvalues=(2.0, 0.5), angle=30.0, lr=0.8,
                                        momentum=0.0, start=(1.5, 1.0), steps=300),
                    "paper: 300 steps, exact (instant)"),
}
