"""Chapter 02 presets: the edge of stability (Cohen et al., ICLR 2021, arXiv 2103.00065).

Each preset is full-batch GD (optionally heavy ball) on one problem ``net`` at several step
sizes ``lr * r`` for ``r`` in ``lr_ratios``; the fields other than ``net`` and ``lr_ratios``
are those of :class:`eoslab.core.config.TrainConfig`.
"""

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset
from eoslab.core.netspec import NetSpec

NUMBER = "02"
SLUG = "edge_of_stability"


@dataclass(frozen=True, kw_only=True)
class EdgeOfStabilityPreset(ChapterPreset):
    """Full-batch GD at the step sizes ``lr * r``, ``r`` in ``lr_ratios`` (largest first).

    ``net`` is the data and the network (Cohen et al.'s fc-tanh 200x2 with the MSE); ``lr``
    (the largest step size) and ``momentum`` (heavy ball beta) are the app's sliders;
    ``sharpness_every`` is how often Lanczos measures the top Hessian eigenvalue.
    """

    NUMBER = "02"
    net: NetSpec
    optimizer: str = "gd"
    lr: float = 0.4
    momentum: float = 0.0
    lr_ratios: tuple[float, ...] = (1.0,)
    steps: int = 800
    record_every: int = 10
    sharpness_every: int = 20


PRESETS = {
    "quick": EdgeOfStabilityPreset(
        name="quick", label="quick: 200 digits, one step size, ~10 s on a CPU",
        net=NetSpec(n_train=200, width=200), lr=0.4, lr_ratios=(1.0,), steps=300,
        record_every=10,
        sharpness_every=20),
    "default": EdgeOfStabilityPreset(
        name="default", label="default: 1000 digits, three step sizes, ~2 min on a CPU",
        net=NetSpec(n_train=1000, width=200), lr=0.4, lr_ratios=(1.0, 2 / 3, 0.5), steps=800,
        record_every=10, sharpness_every=20),
    "paper": EdgeOfStabilityPreset(
        name="paper",
        label="paper: CIFAR-10 5k, fc-tanh, MSE, 3 x 10k steps, ~1 min per step size on a "
              "GPU (estimate), ~1 h on a CPU",
        needs=CIFAR_NEEDS,
        net=NetSpec(dataset="cifar10-5k", n_train=None, width=200), lr=2 / 30,
        lr_ratios=(1.0, 2 / 3, 1 / 3), steps=10000, record_every=20, sharpness_every=50),
}
