"""Presets of chapter 04, unstable convergence (Ahn, Zhang, Sra, ICML 2022, arXiv 2204.01050)."""

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset
from eoslab.core.netspec import NetSpec

NUMBER = "04"
SLUG = "unstable_convergence"


@dataclass(frozen=True, kw_only=True)
class UnstableConvergencePreset(ChapterPreset):
    """Chapter 04's settings: one GD run of ``net`` at step size ``lr``.

    The run lasts ``steps`` steps, records every ``record_every`` steps and probes
    :math:`\\eta S`, RP and the alignment every ``probe_every`` steps.  ``lr_edge`` is
    :math:`2/\\lambda_0`, the step size at GD's stability threshold at the initialisation
    (``None`` where it has not been computed); the step-size slider is scaled by it.
    """

    NUMBER = NUMBER
    net: NetSpec
    lr: float
    steps: int
    record_every: int
    probe_every: int
    lr_edge: float | None = None


PRESETS = {
    "quick": UnstableConvergencePreset(
        name="quick", label="quick: 100 digits, width 50, ~15 s on a CPU",
        net=NetSpec(n_train=100, width=50), lr=0.6, steps=300, record_every=5, probe_every=5,
        lr_edge=0.808),
    "default": UnstableConvergencePreset(
        name="default", label="default: 250 digits, width 100, ~2 min on a CPU",
        net=NetSpec(n_train=250, width=100), lr=0.4, steps=800, record_every=4, probe_every=4,
        lr_edge=0.725),
    "paper": UnstableConvergencePreset(
        name="paper", label="paper-like: CIFAR-10 5k, fc-tanh 200x2 with MSE (the paper: the "
        "same net with cross-entropy), ~15 min on a GPU (estimate)",
        needs=CIFAR_NEEDS,
        net=NetSpec(dataset="cifar10-5k", n_train=None, width=200),
        lr=2 / 30, steps=5000, record_every=10, probe_every=10),
}
