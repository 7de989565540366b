"""Chapter 07 presets: learning threshold neurons needs a step size past the edge of stability.

Ahn, Bubeck, Chewi, Lee, Suarez & Zhang, NeurIPS 2023, arXiv 2212.07469.

The task is :func:`eoslab.chapters.ch07_threshold_neurons.threshold_neuron.sparse_coding`
(``n`` samples in ``d`` dimensions, spike size ``signal``); each step size runs for the
same time ``time`` = eta x steps (at least ``min_steps`` steps), as in the paper's
Figure 1.  The grid's ``n_lrs`` step sizes are ``ratio_min`` .. ``ratio_max`` times the
measured edge eta* = 2/lambda_max(initial Hessian), for every init in ``seeds``;
``traj_ratios`` are the reference runs drawn next to the slider's step size ``lr``.

Example:
    >>> PRESETS["quick"].d, PRESETS["quick"]["time"]
    (50, 10.0)
"""

from __future__ import annotations

from dataclasses import dataclass

from eoslab.chapters.presets import ChapterPreset

NUMBER = "07"
SLUG = "threshold_neurons"


@dataclass(frozen=True, kw_only=True)
class ThresholdNeuronsPreset(ChapterPreset):
    """One scale of chapter 07 (see the module docs)."""

    NUMBER = "07"
    # the sparse-coding task
    d: int
    n: int
    n_test: int
    signal: float = 3.0
    data_seed: int = 0
    # GD: the same time eta * steps for every step size
    time: float = 10.0
    min_steps: int = 5
    lr: float
    traj_ratios: tuple[float, ...] = (0.7, 1.5, 2.5)
    # the grid of step sizes, in units of eta*, for every init
    ratio_min: float = 0.4
    ratio_max: float = 3.0
    n_lrs: int
    seeds: tuple[int, ...]
    device: str = "cpu"

    lr_edge_formula = "2/λ₀"

    @property
    def lr_edge(self) -> float:
        """The edge of stability at initialisation, :math:`\\eta^* = 2/\\lambda_0`.

        :math:`\\lambda_0` is the top Hessian eigenvalue at the initial weights, averaged
        over the inits (Lanczos, as the experiment measures it); computed once a preset.
        """
        from eoslab.chapters.ch07_threshold_neurons.experiment import edge_at_init

        return edge_at_init(self)


PRESETS = {
    "quick": ThresholdNeuronsPreset(
        name="quick",
        label="quick: d = 50, 400 samples, 10 step sizes x 2 inits, ~5 s on a CPU",
        d=50, n=400, n_test=1000, seeds=(0, 1), n_lrs=10, lr=0.75),
    "default": ThresholdNeuronsPreset(
        name="default",
        label="default: d = 100, 1000 samples, 14 step sizes x 2 inits, ~30 s on a CPU",
        d=100, n=1000, n_test=2000, seeds=(0, 1), n_lrs=14, lr=0.4),
    "paper": ThresholdNeuronsPreset(
        name="paper",
        label="paper: Figure 1's sizes (d = 200, n = 300, signal 3, time 10), 24 step "
              "sizes x 8 inits, ~4 min on a busy 2-core CPU (measured 222 s); CUDA when present",
        d=200, n=300, n_test=2000, seeds=tuple(range(8)), n_lrs=24, lr=0.2, device="auto"),
}
