"""Chapter 18 presets: Adam + L2 vs decoupled weight decay, and Adam's own edge of stability.

The grid compares Adam with L2 and AdamW over (lr, lambda) (Loshchilov & Hutter, ICLR 2019,
arXiv 1711.05101); full-batch Adam's preconditioned sharpness settles near
(2 + 2 beta1)/((1 - beta1) eta) = 38/eta (Cohen et al., arXiv 2207.14484).

The grid follows the paper's recipe at a CPU's scale: a scale-invariant net (``si-mlp``:
bias-free layers each followed by BatchNorm and a fixed last layer, the analogue of the
paper's BatchNorm ResNets), cosine annealing of the step-size multiplier eta_t to 0, and the
paper's convention for the decoupled decay (``grid.decay="paper"``: AdamW shrinks the
weights by eta_t * lambda per step, independent of the learning rate; Adam + L2 adds
lambda * w to the gradient).  Each optimiser has its own lambda axis (half decades).
The edge-of-stability run is chapter 02's problem (fc-tanh, MSE, full batch) with Adam.
"""

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset
from eoslab.core.netspec import NetSpec

NUMBER = "18"
SLUG = "adamw"


def _half_decades(low: int, high: int) -> tuple:
    """10**(k/2) for k = low..high: the lambda axis, two columns per decade."""
    return tuple(float(f"{10 ** (k / 2):.1g}") for k in range(low, high + 1))


@dataclass(frozen=True, kw_only=True)
class Decays:
    """The grid's lambda axis of each optimiser (L2 coefficient, decoupled decay)."""

    adam: tuple[float, ...]
    adamw: tuple[float, ...]

    def by_optimizer(self) -> dict:
        """``{"adam": ..., "adamw": ...}``: the ``wds`` argument of :func:`.grid.run_grid`."""
        return {"adam": self.adam, "adamw": self.adamw}


@dataclass(frozen=True, kw_only=True)
class GridSpec:
    """The (lr, lambda) grid: its net and data, batch, schedule, lambda convention and axes.

    ``net`` is the problem every cell trains; ``decay`` is the convention of
    :func:`eoslab.chapters.ch18_adamw.grid.grid_cells` (``"paper"``: AdamW shrinks by
    eta_t * lambda per step; ``"torch"``: by lr_t * lambda).
    """

    net: NetSpec
    batch: int = 50
    steps: int = 300
    schedule: str = "cosine"
    decay: str = "paper"
    seeds: tuple[int, ...] = (0,)
    lrs: tuple[float, ...]
    wds: Decays


@dataclass(frozen=True, kw_only=True)
class AdamEosSpec:
    """Full-batch Adam on ``net`` (chapter 02's net and loss) with momentum ``beta1``."""

    net: NetSpec
    beta1: float = 0.9
    steps: int = 500
    record_every: int = 10
    sharpness_every: int = 10


@dataclass(frozen=True, kw_only=True)
class AdamWPreset(ChapterPreset):
    """Chapter 18's settings: Adam's step size, its problem and the (lr, lambda) grid.

    ``lr``: full-batch Adam's step size (the slider); ``eos``: its problem; ``grid``: the
    (lr, lambda) grid of Adam + L2 and AdamW.
    """

    NUMBER = "18"
    lr: float = 0.004
    eos: AdamEosSpec
    grid: GridSpec


def _si_mlp(n_train: int) -> NetSpec:
    """The grid's net on ``n_train`` digits: the scale-invariant MLP with cross-entropy."""
    return NetSpec(n_train=n_train, model="si-mlp", width=100, loss="cross-entropy")


PRESETS = {
    "quick": AdamWPreset(
        name="quick",
        label="quick: 22 grid runs + 200 Adam steps, ~20 s on a CPU",
        eos=AdamEosSpec(net=NetSpec(n_train=250, width=200), steps=200),
        grid=GridSpec(net=_si_mlp(300), steps=250, lrs=(1e-3, 3e-2),
                      wds=Decays(adam=_half_decades(-6, 0), adamw=_half_decades(-5, -2))),
    ),
    "default": AdamWPreset(
        name="default",
        label="default: 136 grid runs + 500 Adam steps, ~2 min on a CPU",
        eos=AdamEosSpec(net=NetSpec(n_train=500, width=200), steps=500),
        grid=GridSpec(net=_si_mlp(500), steps=300, lrs=(1e-3, 3e-3, 1e-2, 3e-2), seeds=(0, 1),
                      wds=Decays(adam=_half_decades(-8, 0), adamw=_half_decades(-8, -1))),
    ),
    "paper": AdamWPreset(
        name="paper",
        label="paper-like: CIFAR-10 5k, BN ResNet, ~4 h GPU (estimate)",
        needs=CIFAR_NEEDS,
        eos=AdamEosSpec(net=NetSpec(dataset="cifar10-5k", n_train=None, width=200), steps=3000,
                        sharpness_every=50, record_every=20),
        grid=GridSpec(net=NetSpec(dataset="cifar10-5k", n_train=None, model="resnet-small",
                                  width=32, loss="cross-entropy"), batch=128, steps=4000,
                      lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
                      wds=Decays(adam=_half_decades(-10, -1), adamw=_half_decades(-10, -3))),
    ),
}
