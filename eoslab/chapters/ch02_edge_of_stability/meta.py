"""Chapter 02 presets: the edge of stability (Cohen et al., ICLR 2021, arXiv 2103.00065).

Each preset is full-batch GD (optionally heavy ball) on one problem at several step sizes
``lr * r`` for ``r`` in ``lr_ratios``; the fields other than ``lr_ratios`` are those of
:class:`eoslab.core.config.TrainConfig`.
"""

from dataclasses import dataclass

from eoslab.chapters.presets import ChapterPreset

NUMBER = "02"
SLUG = "edge_of_stability"


@dataclass(frozen=True, kw_only=True)
class EdgeOfStabilityPreset(ChapterPreset):
    """Full-batch GD at the step sizes ``lr * r``, ``r`` in ``lr_ratios`` (largest first).

    ``lr`` (the largest step size) and ``momentum`` (heavy ball beta) are the app's sliders;
    ``sharpness_every`` is how often Lanczos measures the top Hessian eigenvalue.
    """

    NUMBER = "02"
    dataset: str = "digits"
    n_train: int | None = 1000
    model: str = "fc-tanh"
    width: int = 200
    depth: int = 2
    loss: str = "mse"
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
        n_train=200, lr=0.4, lr_ratios=(1.0,), steps=300, record_every=10,
        sharpness_every=20),
    "default": EdgeOfStabilityPreset(
        name="default", label="default: 1000 digits, three step sizes, ~2 min on a CPU",
        n_train=1000, lr=0.4, lr_ratios=(1.0, 2 / 3, 0.5), steps=800, record_every=10,
        sharpness_every=20),
    "paper": EdgeOfStabilityPreset(
        name="paper",
        label="paper: CIFAR-10 5k, 3 x 10k steps, ~1 min per step size on a GPU "
              "(estimate), ~1 h on a CPU",
        needs="torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
              "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) "
              "once, or point EOSLAB_DATA at a folder holding cifar-10-batches-py",
        dataset="cifar10-5k", n_train=None, lr=2 / 30, lr_ratios=(1.0, 2 / 3, 1 / 3),
        steps=10000, record_every=20, sharpness_every=50),
}
