"""Presets of chapter 05, normalised GD and GD on sqrt(L).

Arora, Li, Panigrahi, ICML 2022 (arXiv 2205.09745).
"""

from dataclasses import dataclass

from eoslab.chapters.presets import CIFAR_NEEDS, ChapterPreset
from eoslab.core.netspec import NetSpec

NUMBER = "05"
SLUG = "normalized_gd"


@dataclass(frozen=True, kw_only=True)
class NormalizedGDPreset(ChapterPreset):
    """Chapter 05's settings: each of ``methods`` trains ``net`` for ``steps`` steps.

    ``"ngd"`` is normalised GD at step size ``lr``, ``"sqrt"`` GD on :math:`\\sqrt L` at
    ``sqrt_lr``; rows are recorded every ``record_every`` steps and the sharpness of
    :math:`L` every ``sharpness_every`` steps.

    ``lr_edge`` is normalised GD's edge at the initialisation: NGD is GD with
    :math:`\\eta_{\\mathrm{eff}} = \\eta/\\lVert\\nabla L_0\\rVert`, so its threshold
    :math:`\\eta_{\\mathrm{eff}}\\lambda_0 = 2` is
    :math:`\\eta = 2\\lVert\\nabla L_0\\rVert/\\lambda_0`
    (not :math:`2/\\lambda_0`).  ``sqrt_lr_edge`` is that of GD on :math:`\\sqrt L`,
    :math:`\\eta_{\\mathrm{eff}} = \\eta/(2\\sqrt{L_0})`: :math:`\\eta = 4\\sqrt{L_0}/\\lambda_0`.
    Both are ``None`` where not computed.  As the gradient and the loss shrink, both runs
    reach their edge at step sizes far below these.
    """

    NUMBER = NUMBER
    net: NetSpec
    lr: float
    sqrt_lr: float
    steps: int
    record_every: int = 10
    sharpness_every: int = 50
    methods: tuple[str, ...] = ("ngd", "sqrt")
    lr_edge: float | None = None
    lr_edge_formula = "2‖∇L₀‖/λ₀"  # as the edge marker names it
    sqrt_lr_edge: float | None = None


PRESETS = {
    "quick": NormalizedGDPreset(
        name="quick",
        label="quick: 100 digits, NGD and GD on √L, ~15 s on a CPU",
        net=NetSpec(n_train=100, width=50), lr=0.1, sqrt_lr=0.2, steps=600,
        methods=("ngd", "sqrt"), lr_edge=0.765, sqrt_lr_edge=1.310),
    "default": NormalizedGDPreset(
        name="default",
        label="default: 100 digits, NGD and GD on √L, ~2 min on a CPU",
        net=NetSpec(n_train=100, width=100), lr=0.1, sqrt_lr=0.2, steps=2000,
        methods=("ngd", "sqrt"), lr_edge=0.699, sqrt_lr_edge=1.082),
    "paper": NormalizedGDPreset(
        name="paper",
        label="paper-like: CIFAR-10 5k, fc-tanh 200x2 (Cohen et al.'s net, not the paper's "
              "own runs), NGD and GD on sqrt(L), ~30 min on a GPU (estimate)",
        needs=CIFAR_NEEDS,
        net=NetSpec(dataset="cifar10-5k", n_train=None, width=200),
        lr=0.05, sqrt_lr=0.02, steps=20000, sharpness_every=200, record_every=50,
        methods=("ngd", "sqrt")),
}
