"""Chapter 17 presets: learning-rate schedules for full-batch GD, with the sharpness.

SGDR and cyclical schedules, and Smith's range test, on the edge-of-stability setting of
chapter 02: fc-tanh on digits with the MSE of Cohen et al. (arXiv 2103.00065) starts with
a sharpness below 2/eta at the peak eta = 0.4 (2/eta = 5), so GD reaches the edge early
in a period; the cosine decay to eta_min = low * eta = 0.1 lets the sharpness climb after
2/eta(t), above 2/eta_max, so each warm restart throws it past the edge (a catapult).
"""

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset
from eoslab.core.netspec import NetSpec

NUMBER = "17"
SLUG = "lr_schedules"


@dataclass(frozen=True, kw_only=True)
class Training:
    """The run under the designed schedule: TrainConfig fields of the same names.

    Attributes:
        optimizer: full-batch GD.
        steps: training steps; ``record_every``, ``sharpness_every``: how often a history
            row and the top Hessian eigenvalue are recorded.
    """

    optimizer: str = "gd"
    steps: int
    record_every: int = 10
    sharpness_every: int = 10


@dataclass(frozen=True, kw_only=True)
class RangeSpec:
    """Smith's range test: the rate grows from ``lr_min`` to ``lr_max`` over ``steps`` steps.

    Attributes:
        lr_min, lr_max: the rates of the first and the last step.
        steps: the length of the test; ``batch``: its batch size (``None``: full batch).
    """

    lr_min: float = 1e-3
    lr_max: float = 10.0
    steps: int
    batch: int | None = None


@dataclass(frozen=True, kw_only=True)
class SchedulePreset(ChapterPreset):
    """A designed schedule on one training problem, and the range test of that problem.

    Attributes:
        schedule, lr, period, low, gamma: the designer's controls (name, peak eta, period
            in steps, lowest eta / peak, step decay factor).
        net: the data and the network (:class:`~eoslab.core.netspec.NetSpec`).
        training: the run under the schedule (:class:`Training`).
        range_test: the range test of the same problem (:class:`RangeSpec`).
        lr_edge: :math:`2/\\lambda_0`, GD's stability threshold at the initialisation
            (:math:`\\lambda_0` the top Hessian eigenvalue of the initial net on its data);
            ``None`` where it has not been computed (the paper preset's CIFAR-10 data are
            not installed by default). The app's peak-step-size slider is scaled by it.
    """

    NUMBER = "17"
    schedule: str = "cosine-restarts"
    lr: float = 0.4
    period: int
    low: float = 0.25
    gamma: float = 0.5
    net: NetSpec
    training: Training
    range_test: RangeSpec
    lr_edge: float | None = None
    lr_edge_formula = "2/λ₀"


PRESETS = {
    "quick": SchedulePreset(
        name="quick", period=150, net=NetSpec(n_train=250, width=200),
        training=Training(steps=300),
        range_test=RangeSpec(steps=60), lr_edge=0.497,
        label="quick: 250 digits, 300 steps, one restart, ~15 s on a CPU",
    ),
    "default": SchedulePreset(
        name="default", period=300, net=NetSpec(n_train=500, width=200),
        training=Training(steps=900),
        range_test=RangeSpec(steps=100), lr_edge=0.489,
        label="default: 500 digits, 900 steps, 2 restarts, ~2 min on a CPU",
    ),
    "paper": SchedulePreset(
        name="paper", lr=0.1, period=2000,
        net=NetSpec(dataset="cifar10-5k", n_train=None, width=200),
        training=Training(steps=6000, record_every=20, sharpness_every=50),
        range_test=RangeSpec(steps=300),
        label="paper-like: CIFAR-10 5k, fc-tanh GD, ~30 min GPU (estimate)",
        needs=CIFAR_NEEDS,
    ),
}
