"""Presets of chapter 08, GD vs gradient flow (Elkabetz and Cohen, NeurIPS 2021, arXiv 2107.06608).

The net is ``net`` (:class:`~eoslab.core.netspec.NetSpec`: ``model`` with ``depth`` hidden
layers of ``width`` units, seed ``model_seed``, on ``n_train`` samples of ``dataset`` under
``loss``).  The gradient flow is integrated up to
time ``horizon`` with its sharpness read at ``sharpness_points`` times; GD runs at the
step sizes ``lr * r`` for ``r`` in ``lr_ratios`` (GD at eta takes horizon / eta steps),
recording about ``points`` rows each.  ``lr_edge`` is :math:`2/\\lambda_0`, GD's
stability threshold at the initialisation of ``net`` (``None`` where not computed); the
step-size slider is scaled by it.

Elkabetz and Cohen's theory covers deep nets with *homogeneous* activations (ReLU,
linear); the presets use Cohen et al.'s fc-tanh net, which is not homogeneous, and the
app's network menu swaps in ``fc-relu`` or ``fc-linear`` (a ``model`` setting).

Example:
    >>> PRESETS["quick"].lr_ratios, PRESETS["paper"].net.n_train is None
    ((1.0, 0.5), True)
"""

from __future__ import annotations

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset
from eoslab.core.netspec import NetSpec

NUMBER = "08"
SLUG = "gd_vs_flow"


@dataclass(frozen=True, kw_only=True)
class GdVsFlowPreset(ChapterPreset):
    """One scale of chapter 08 (see the module docs)."""

    NUMBER = "08"
    net: NetSpec
    # the flow and the GD runs compared with it
    lr: float
    horizon: float
    lr_ratios: tuple[float, ...] = (1.0, 0.5, 0.25)
    points: int = 40
    sharpness_points: int = 25
    lr_edge: float | None = None


PRESETS = {
    "quick": GdVsFlowPreset(
        name="quick",
        label="quick: 100 digits, width 50, flow to t = 60, two step sizes, ~10 s on a CPU",
        net=NetSpec(n_train=100, width=50), lr=0.5, horizon=60.0, lr_ratios=(1.0, 0.5), points=30,
        sharpness_points=13, lr_edge=0.808),
    "default": GdVsFlowPreset(
        name="default",
        label="default: 250 digits, width 100, flow to t = 100, three step sizes, "
              "~20 s on an idle 2-core CPU, ~1 min on a busy one",
        net=NetSpec(n_train=250, width=100), lr=0.4, horizon=100.0, lr_edge=0.725),
    "paper": GdVsFlowPreset(
        name="paper",
        label="paper-like: CIFAR-10 5k, fc-tanh 200x2 (Jeremy Cohen et al.'s EoS setting; "
              "Elkabetz & Cohen's theory is for homogeneous activations such as ReLU), "
              "~30 min on a GPU (estimate)",
        needs=CIFAR_NEEDS,
        net=NetSpec(dataset="cifar10-5k", n_train=None, width=200), lr=2 / 30, horizon=100.0,
        lr_ratios=(1.0, 0.5, 0.25), points=50, sharpness_points=40),
}
