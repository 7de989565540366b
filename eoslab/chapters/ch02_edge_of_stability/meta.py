"""Chapter 02 presets: the edge of stability (Cohen et al., ICLR 2021, arXiv 2103.00065).

Each preset is full-batch GD (optionally heavy ball) on one problem ``net`` at several step
sizes ``lr * r`` for ``r`` in ``lr_ratios``; the fields other than ``net``, ``lr_ratios``,
``lr_edge`` and ``flow_horizon`` are those of :class:`eoslab.core.config.TrainConfig`.

The reader may swap the architecture and the loss of ``net`` for another of
:data:`ARCHITECTURES` and :data:`LOSSES` (Cohen et al. run fc-tanh, fc-relu and small CNNs,
with the squared loss and the cross-entropy): :func:`chosen_net` builds that problem.

Example:
    >>> net = chosen_net(PRESETS["quick"], "cnn", "ce")
    >>> net.model, net.width, net.loss
    ('cnn', 16, 'ce')
"""

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset
from eoslab.core.netspec import NetSpec

NUMBER = "02"
SLUG = "edge_of_stability"

#: architecture name -> the hidden width it is built with (``None``: the preset's own width).
#: ``cnn`` is eoslab's small ConvNet (two conv3x3-ReLU-maxpool blocks and a linear head);
#: on the 8x8 digits its two poolings leave a 2x2 map, so 16 channels keep it small.
ARCHITECTURES = {"fc-tanh": None, "fc-relu": None, "cnn": 16}
#: loss name -> what the menu shows.
LOSSES = {"mse": "squared loss (MSE)", "ce": "cross-entropy"}


@dataclass(frozen=True, kw_only=True)
class EdgeOfStabilityPreset(ChapterPreset):
    """Full-batch GD at the step sizes ``lr * r``, ``r`` in ``lr_ratios`` (largest first).

    ``net`` is the data and the network (Cohen et al.'s fc-tanh 200x2 with the MSE); ``lr``
    (the largest step size) and ``momentum`` (heavy ball beta) are the app's sliders;
    ``sharpness_every`` is how often Lanczos measures the top Hessian eigenvalue.
    ``lr_edge`` is :math:`2/\\lambda_0`, the step size at the stability threshold at
    initialisation (:math:`\\lambda_0` the sharpness of ``net`` at its initial weights;
    with momentum the threshold is :math:`(2+2\\beta)/\\lambda_0`), ``None`` where it was not
    measured; ``tests/chapters/test_ch02_edge_of_stability.py`` recomputes it.
    ``flow_horizon`` is how far in time :math:`t = \\eta k` the gradient flow
    :math:`\\dot\\theta = -\\nabla L(\\theta)` is integrated (RK45) for comparison, ``0``
    for none; it stops at the longest GD run's time if that comes first.
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
    lr_edge: float | None = None
    flow_horizon: float = 0.0
    flow_points: int = 60


def chosen_net(preset: EdgeOfStabilityPreset, arch: str | None = None,
               loss: str | None = None) -> NetSpec:
    """``preset.net`` with the architecture ``arch`` and the loss ``loss`` (``None``: keep).

    Raises:
        ValueError: an architecture or a loss not offered.
    """
    arch = preset.net.model if arch is None else arch
    loss = preset.net.loss if loss is None else loss
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch={arch!r} is not allowed; use one of {', '.join(ARCHITECTURES)}")
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} is not allowed; use one of {', '.join(LOSSES)}")
    if arch == preset.net.model and loss == preset.net.loss:
        return preset.net
    width = ARCHITECTURES[arch] or (preset.net.width if preset.net.model in ("fc-tanh", "fc-relu")
                                    else 200)
    return preset.net.replace(model=arch, loss=loss, width=width)


PRESETS = {
    "quick": EdgeOfStabilityPreset(
        name="quick", label="quick: 200 digits, one step size, ~10 s on a CPU",
        net=NetSpec(n_train=200, width=200), lr=0.4, lr_ratios=(1.0,), steps=300,
        record_every=10, sharpness_every=20, lr_edge=0.5071, flow_horizon=48.0),
    "default": EdgeOfStabilityPreset(
        name="default", label="default: 1000 digits, three step sizes, ~2 min on a CPU",
        net=NetSpec(n_train=1000, width=200), lr=0.4, lr_ratios=(1.0, 2 / 3, 0.5), steps=800,
        record_every=10, sharpness_every=20, lr_edge=0.5008, flow_horizon=48.0),
    "paper": EdgeOfStabilityPreset(
        name="paper",
        label="paper: CIFAR-10 5k, fc-tanh, MSE, 3 x 10k steps, ~1 min per step size on a "
              "GPU (estimate), ~1 h on a CPU",
        needs=CIFAR_NEEDS,
        net=NetSpec(dataset="cifar10-5k", n_train=None, width=200), lr=2 / 30,
        lr_ratios=(1.0, 2 / 3, 1 / 3), steps=10000, record_every=20, sharpness_every=50,
        flow_horizon=100.0),
}
