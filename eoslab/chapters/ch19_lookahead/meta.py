"""Chapter 19 presets: Lookahead's fast and slow weights on a 2-D quadratic (exact, instant).

The quadratic has curvatures (1, 0.1), so GD alone is stable for eta < 2 and Lookahead
(alpha = 0.5, k = 5) for eta < 1 + 3**(1/5) = 2.2457 (:func:`eoslab.optimizers.lookahead.lookahead_threshold`).
``variance_seeds`` noisy runs at ``variance_lr`` measure the noise floor of SGD alone
against Lookahead's slow weights.
"""

from eoslab.chapters.presets import Preset

NUMBER = "19"
SLUG = "lookahead"

_BASE = {
    "eigenvalues": (1.0, 0.1),
    "angle": 30.0,
    "start": (1.5, 1.0),
    "lr": 2.1,
    "alpha": 0.5,
    "k": 5,
    "momentum": 0.0,
    "noise": 0.0,
    "variance_lr": 1.0,
    "variance_noise": 0.1,
}

PRESETS = {
    "quick": Preset(
        NUMBER,
        "quick",
        dict(_BASE, steps=100, variance_steps=400, variance_seeds=4),
        "quick: 100 steps, 4 noisy seeds, exact (instant)",
    ),
    "default": Preset(
        NUMBER,
        "default",
        dict(_BASE, steps=200, variance_steps=2000, variance_seeds=16),
        "default: 200 steps (instant), 16 noisy seeds of 2000 steps (~30 s on a shared CPU)",
    ),
    "paper": Preset(
        NUMBER,
        "paper",
        dict(_BASE, steps=500, variance_steps=10000, variance_seeds=64),
        "paper: the noisy-quadratic analysis of Zhang et al. Sec. 3, 64 seeds of "
        "10000 steps (~30 s on a CPU)",
    ),
}
