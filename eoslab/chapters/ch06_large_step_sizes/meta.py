"""Chapter 06 presets: large step sizes escape sharp local minima.

Mohtashami, Jaggi & Stich, ICML 2023, arXiv 2205.15142.

The landscape is :class:`eoslab.chapters.ch06_large_step_sizes.sharp_valleys.SharpValleys`
(a bowl of curvature 1 carrying seven narrow ring valleys of depth 1 and width 0.05 between
radii 1.5 and 4.5): the rings' radial curvature is about 370, so GD can rest in a ring only
for eta < 2/370 = 0.0054, and at the global minimum for eta < 2.  ``n_lrs`` step sizes
log-spaced in ``[lr_min, lr_max]`` x ``noises`` is the grid of noisy-GD runs (``seeds``
starts at radius ``start_radius``; the last ``quiet`` of ``steps`` steps are noise-free);
``lr`` and ``noise`` are the sliders that pick the trajectories drawn; ``lr_edge`` is
:math:`2/\\lambda_0` where the runs start (:math:`2/\\mu = 2`: at radius 5 only the bowl
curves), which scales the step-size slider; the rings' own edge is far below it.  ``net`` is the
small network (digits, fc-tanh), trained by full-batch GD at each of the step sizes
``net_gd.lrs`` for ``net_gd.steps`` steps, with the sharpness measured along the way.

Example:
    >>> PRESETS["quick"].net_gd.lrs, PRESETS["quick"]["noise"]
    ((0.2, 1.0), 3.0)
"""

from __future__ import annotations

from dataclasses import dataclass

from eoslab.chapters.presets import ChapterPreset
from eoslab.core.netspec import NetSpec

NUMBER = "06"
SLUG = "large_step_sizes"


@dataclass(frozen=True, kw_only=True)
class NetGD:
    """Full-batch GD of the small network: ``steps`` steps at each of the step sizes ``lrs``.

    The noise arm: GD at the smallest of ``lrs`` with isotropic Gaussian noise of size
    ``noise`` added to every gradient (``0`` leaves it out).
    """

    lrs: tuple[float, ...]
    steps: int
    noise: float = 0.03


@dataclass(frozen=True, kw_only=True)
class LargeStepSizesPreset(ChapterPreset):
    """One scale of chapter 06 (see the module docs)."""

    NUMBER = "06"
    # the landscape (SharpValleys) and where the runs start
    dim: int
    curvature: float = 1.0
    radii: tuple[float, ...] = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5)
    depth: float = 1.0
    width: float = 0.05
    start_radius: float = 5.0
    # the sliders and the trajectories drawn at them
    lr: float = 0.3
    noise: float = 3.0
    traj_seeds: int = 6
    # 2/lambda_0 where the runs start: the bowl's 2/curvature (the rings are far away)
    lr_edge: float | None = 2.0
    lr_edge_formula = "2/μ"  # as the edge marker names it
    # the (step size x noise) grid
    lr_min: float
    lr_max: float
    n_lrs: int
    noises: tuple[float, ...]
    seeds: int
    steps: int
    quiet: int
    # where the trajectories and the grid run
    device: str = "cpu"
    # the small network (on its own net.device) and its GD runs
    net: NetSpec
    net_gd: NetGD


PRESETS = {
    "quick": LargeStepSizesPreset(
        name="quick",
        label="quick: 8 x 4 grid of 12 seeds, a 2-step-size digits net, ~10 s on a CPU",
        dim=10, lr_min=1.5e-3, lr_max=1.5, n_lrs=8, noises=(0.0, 1.0, 10.0, 100.0),
        seeds=12, steps=800, quiet=400,
        net=NetSpec(n_train=200, width=16, device="cpu"),
        net_gd=NetGD(lrs=(0.2, 1.0), steps=300)),
    "default": LargeStepSizesPreset(
        name="default",
        label="default: 16 x 7 grid of 32 seeds, a digits net at 4 step sizes, ~30 s on a CPU",
        dim=20, lr_min=2e-3, lr_max=2.5, n_lrs=16,
        noises=(0.0, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0), seeds=32, steps=3000, quiet=1500,
        net=NetSpec(n_train=300, width=32, device="cpu"),
        net_gd=NetGD(lrs=(0.1, 0.2, 0.4, 0.8), steps=600)),
    "paper": LargeStepSizesPreset(
        name="paper",
        label="paper-like: 24 x 9 grid of 128 seeds in 50-D, digits net width 200 at 6 step "
              "sizes (not the paper's CIFAR-10 runs), ~15 min on a busy 2-core CPU "
              "(extrapolated); CUDA when present",
        dim=50, lr_min=1e-3, lr_max=2.5, n_lrs=24,
        noises=(0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0), seeds=128, steps=6000,
        quiet=3000,
        device="auto",
        net=NetSpec(n_train=1000, width=200, device="auto"),
        net_gd=NetGD(lrs=(0.025, 0.05, 0.1, 0.2, 0.4, 0.8), steps=3000)),
}
