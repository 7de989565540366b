"""Santurkar et al.'s covariate-shift experiment: noise after BatchNorm does not hurt training.

Santurkar, Tsipras, Ilyas, Madry, "How Does Batch Normalization Help Optimization?",
NeurIPS 2018 (arXiv 1805.11604), test the belief that BatchNorm helps by keeping each
layer's input distribution stable (reducing "internal covariate shift").  They inject
noise *after* every BatchNorm layer whose mean and variance change at every step, so the
next layer's inputs shift all the time, and find that such a net trains about as well as
the plain BatchNorm net, and better than the net without BatchNorm.

Here, after each BatchNorm of the chapter's MLP and before its ReLU, a unit's output
:math:`z` becomes, during training,

.. math::

    z' = s_t\\, z + m_t + \\sigma\\,\\xi, \\qquad \\log s_t \\sim U(-\\log c, \\log c),\\;
    m_t \\sim U(-\\mu, \\mu),\\; \\xi \\sim \\mathcal N(0, 1),

with :math:`s_t, m_t` drawn afresh for every unit at every step and :math:`\\xi` for every
example: the distribution of the next layer's input has a random mean and scale that jump
at each step.  :func:`covariate_shift_runs` trains three nets with full-batch GD at one step
size (with BatchNorm, with BatchNorm and the noise, without BatchNorm) and records the
training loss without noise.

Example:
    >>> noise = ShiftNoise(scale=2.0, shift=1.0, std=0.5, seed=0)
    >>> z = torch.zeros(3, 4)
    >>> out = noise(z)
    >>> out.shape, bool((out != 0).any())
    (torch.Size([3, 4]), True)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from eoslab.core.losses import get_loss
from eoslab.curvature.scale_invariance import ScaleInvariantMLP

if TYPE_CHECKING:  # the registry imports meta; importing it here first would be circular
    from eoslab.chapters.ch13_normalization_sharpness.meta import NormalizationPreset

__all__ = ["ARMS", "ShiftNoise", "covariate_shift_runs"]

ARMS = {"bn": "BatchNorm", "bn_noise": "BatchNorm + shifting noise", "plain": "no BatchNorm"}


class ShiftNoise(nn.Module):
    """:math:`z \\mapsto s_t z + m_t + \\sigma\\xi` (module docs); identity when ``active`` is off.

    Args:
        scale: :math:`c \\ge 1`, the scale :math:`s_t` is log-uniform on :math:`[1/c, c]`.
        shift: :math:`\\mu \\ge 0`, the mean :math:`m_t` is uniform on :math:`[-\\mu, \\mu]`.
        std: :math:`\\sigma \\ge 0`, the per-example noise.
        seed: of the noise's own generator.
    """

    def __init__(self, scale: float = 2.0, shift: float = 1.0, std: float = 0.5, seed: int = 0):
        super().__init__()
        for name, value, low in (("scale", scale, 1.0), ("shift", shift, 0.0),
                                 ("std", std, 0.0)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= low):
                raise ValueError(f"{name}={value!r} is not allowed; use a finite number >= {low}")
        self.scale, self.shift, self.std = float(scale), float(shift), float(std)
        self.gen = torch.Generator().manual_seed(seed)
        self.active = True

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return z
        units = z.shape[1:]
        u = torch.rand(2, *units, generator=self.gen, dtype=z.dtype)
        s = torch.exp((2 * u[0] - 1) * math.log(self.scale)).to(z.device)
        m = ((2 * u[1] - 1) * self.shift).to(z.device)
        xi = torch.randn(z.shape, generator=self.gen, dtype=z.dtype).to(z.device)
        return s * z + m + self.std * xi


def _model(preset: NormalizationPreset, data, arm: str, noise: dict) -> nn.Module:
    model = ScaleInvariantMLP(math.prod(data.input_shape), data.n_outputs,
                              width=preset.net.width, depth=preset.net.depth,
                              norm="none" if arm == "plain" else "batch",
                              out_scale=preset.si_mlp.out_scale, init=preset.si_mlp.init,
                              seed=preset.net.model_seed)
    if arm == "bn_noise":
        layers = []
        for i, layer in enumerate(model):
            layers.append(layer)
            if isinstance(layer, nn.BatchNorm1d):
                layers.append(ShiftNoise(**noise, seed=i))
        model = nn.Sequential(*layers)
    return model.to(device=data.x_train.device, dtype=data.x_train.dtype)


def _set_noise(model: nn.Module, active: bool) -> None:
    for m in model.modules():
        if isinstance(m, ShiftNoise):
            m.active = active


def covariate_shift_runs(preset: NormalizationPreset, lr: float, *, steps: int | None = None,
                         record_every: int = 10, noise: dict | None = None) -> dict:
    """Full-batch GD on each of :data:`ARMS` at step size ``lr``; noise-free loss histories.

    Returns ``arm -> {"steps", "loss", "diverged"}`` (``loss``: the training loss without
    the injected noise, BatchNorm with batch statistics, every ``record_every`` steps; a
    non-finite loss stops that arm and sets ``diverged``).

    Raises:
        ValueError: ``lr`` not a finite number > 0.
    """
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr={lr!r} is not allowed; use a finite number > 0")
    steps = preset.steps if steps is None else steps
    noise = {"scale": 2.0, "shift": 1.0, "std": 0.5, **(noise or {})}
    data = preset.net.load_data()
    loss_fn = get_loss(preset.net.loss)
    out = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for arm in ARMS:
            model = _model(preset, data, arm, noise)
            opt = torch.optim.SGD(model.parameters(), lr=lr)
            hist = {"steps": [], "loss": [], "diverged": False}
            for t in range(steps + 1):
                if t % record_every == 0:
                    _set_noise(model, False)
                    with torch.no_grad():
                        clean = float(loss_fn(model(data.x_train), data.y_train))
                    _set_noise(model, True)
                    hist["steps"].append(t)
                    hist["loss"].append(clean)
                    if not math.isfinite(clean):
                        hist["diverged"] = True
                        break
                if t == steps:
                    break
                opt.zero_grad()
                loss_fn(model(data.x_train), data.y_train).backward()
                opt.step()
            out[arm] = hist
    finally:
        torch.set_num_threads(threads)
    return out
