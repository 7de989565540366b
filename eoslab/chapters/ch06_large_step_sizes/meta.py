"""Chapter 06 presets: large step sizes escape sharp local minima (Mohtashami, Jaggi & Stich,
ICML 2023, arXiv 2205.15142).

The landscape is :class:`eoslab.chapters.ch06_large_step_sizes.sharp_valleys.SharpValleys` (a bowl of curvature 1 carrying
seven narrow ring valleys of depth 1 and width 0.05 between radii 1.5 and 4.5): the rings'
radial curvature is about 370, so GD can rest in a ring only for eta < 2/370 = 0.0054, and
at the global minimum for eta < 2.  ``lrs`` x ``noises`` is the grid of noisy-GD runs
(``seeds`` starts at radius ``start_radius``; the last ``quiet`` steps are noise-free);
``lr`` and ``noise`` are the sliders that pick the trajectories drawn.  ``net_*`` is the
small network: full-batch GD on digits at the step sizes ``net_lrs``, with the final
sharpness measured.
"""

from eoslab.chapters.presets import Preset

NUMBER = "06"
SLUG = "large_step_sizes"

_BASE = {"curvature": 1.0, "radii": (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5), "depth": 1.0,
         "width": 0.05, "start_radius": 5.0, "lr": 0.3, "noise": 3.0, "traj_seeds": 6,
         "net_dataset": "digits", "net_model": "fc-tanh", "net_loss": "mse", "device": "cpu"}

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(
        _BASE, dim=10, lr_min=1.5e-3, lr_max=1.5, n_lrs=8, noises=(0.0, 1.0, 10.0, 100.0),
        seeds=12, steps=800, quiet=400, net_n_train=200, net_width=16, net_depth=2,
        net_lrs=(0.2, 1.0), net_steps=300),
        "quick: 8 x 4 grid of 12 seeds, a 2-step-size digits net, ~10 s on a CPU"),
    "default": Preset(NUMBER, "default", dict(
        _BASE, dim=20, lr_min=2e-3, lr_max=2.5, n_lrs=16, noises=(0.0, 0.3, 1.0, 3.0, 10.0,
                                                                   30.0, 100.0),
        seeds=32, steps=3000, quiet=1500, net_n_train=300, net_width=32, net_depth=2,
        net_lrs=(0.1, 0.2, 0.4, 0.8), net_steps=600),
        "default: 16 x 7 grid of 32 seeds, a digits net at 4 step sizes, ~30 s on a CPU"),
    "paper": Preset(NUMBER, "paper", dict(
        _BASE, dim=50, lr_min=1e-3, lr_max=2.5, n_lrs=24, noises=(0.0, 0.1, 0.3, 1.0, 3.0,
                                                                   10.0, 30.0, 100.0, 300.0),
        seeds=128, steps=6000, quiet=3000, net_n_train=1000, net_width=200, net_depth=2,
        net_lrs=(0.025, 0.05, 0.1, 0.2, 0.4, 0.8), net_steps=3000, device="auto"),
        "paper: 24 x 9 grid of 128 seeds in 50-D, digits net width 200 at 6 step sizes, "
        "~15 min on a busy 2-core CPU (extrapolated); CUDA when present; not the paper's "
        "CIFAR-10 runs"),
}
