"""Chapter 07 presets: learning threshold neurons needs a step size past the edge of stability
(Ahn, Bubeck, Chewi, Lee, Suarez & Zhang, NeurIPS 2023, arXiv 2212.07469).

The task is :func:`eoslab.chapters.ch07_threshold_neurons.threshold_neuron.sparse_coding` (``n`` samples in ``d`` dimensions,
spike size ``signal``); each step size runs for the same time ``time`` = eta x steps (at
least ``min_steps`` steps), as in the paper's Figure 1.  The grid's step sizes are
``ratio_min`` .. ``ratio_max`` times the measured edge eta* = 2/lambda_max(initial Hessian),
for every init in ``seeds``; ``traj_ratios`` are the reference runs drawn next to the
slider's step size ``lr``.
"""

from eoslab.chapters.presets import Preset

NUMBER = "07"
SLUG = "threshold_neurons"

_BASE = {"signal": 3.0, "time": 10.0, "min_steps": 5, "ratio_min": 0.4, "ratio_max": 3.0,
         "traj_ratios": (0.7, 1.5, 2.5), "data_seed": 0, "device": "cpu"}

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(_BASE, d=50, n=400, n_test=1000, seeds=(0, 1),
                                          n_lrs=10, lr=0.75),
                    "quick: d = 50, 400 samples, 10 step sizes x 2 inits, ~5 s on a CPU"),
    "default": Preset(NUMBER, "default", dict(_BASE, d=100, n=1000, n_test=2000,
                                              seeds=(0, 1), n_lrs=14, lr=0.4),
                      "default: d = 100, 1000 samples, 14 step sizes x 2 inits, ~30 s on a CPU"),
    "paper": Preset(NUMBER, "paper", dict(_BASE, d=200, n=300, n_test=2000,
                                          seeds=tuple(range(8)), n_lrs=24, lr=0.2,
                                          device="auto"),
                    "paper: Figure 1's sizes (d = 200, n = 300, signal 3, time 10), 24 step "
                    "sizes x 8 inits, ~4 min on a busy 2-core CPU (measured 222 s); CUDA when present"),
}
