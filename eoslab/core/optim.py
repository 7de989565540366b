"""Optimisers and learning-rate schedules by name, built on ``torch.optim``.

Full-batch GD and minibatch SGD are both ``torch.optim.SGD``; the difference is only
the batch the training loop feeds it.  Heavy-ball momentum uses PyTorch's convention

.. math::

    b_{t+1} = \\beta b_t + g_t, \\qquad \\theta_{t+1} = \\theta_t - \\eta\\, b_{t+1},

for which GD on a quadratic with curvature :math:`\\lambda` is stable iff
:math:`\\eta\\lambda < 2 + 2\\beta` (Cohen et al. 2021, appendix on momentum).

Optimisers that need to re-evaluate the loss inside their step (SAM) set the attribute
``needs_closure = True``; the training loop then calls ``optimizer.step(closure)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch

from eoslab.core.options import check_optimizer_options, check_schedule_options

__all__ = ["OPTIMIZER_NAMES", "SCHEDULE_NAMES", "make_optimizer", "make_scheduler",
           "check_lr"]

OPTIMIZER_NAMES = ("gd", "sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "ngd", "sam",
                   "label-noise")
SCHEDULE_NAMES = ("constant", "cosine", "step", "linear-warmup", "cosine-restarts",
                  "triangular")


def check_lr(lr) -> float:
    """Validate a learning rate: a finite positive number."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"lr={lr!r} is not allowed; the learning rate must be a finite "
                         "number > 0")
    return float(lr)


def _check_unit(name: str, value, upper_open: bool = True) -> float:
    ok = isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value and (
        value < 1 if upper_open else value <= 1)
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed; use a number in [0, 1)")
    return float(value)


def make_optimizer(name: str, params: Iterable, lr: float, *, momentum: float = 0.0,
                   weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                   eps: float = 1e-8, options: Mapping | None = None,
                   seed: int = 0) -> torch.optim.Optimizer:
    """A ``torch.optim`` optimiser by name.

    ``gd``/``sgd``: plain steps (with ``momentum`` if given); ``momentum``: heavy ball with
    ``momentum`` (default 0.9 when 0 is given); ``nesterov``: Nesterov momentum;
    ``adam``/``adamw``: Adam with coupled L2 / decoupled weight decay; ``rmsprop``;
    ``ngd``: normalised GD :math:`\\theta \\leftarrow \\theta - \\eta g/\\lVert g\\rVert`
    (:class:`eoslab.optimizers.normalized.NormalizedGD`; no momentum or weight decay);
    ``sam``: SAM of radius ``options["rho"]`` around SGD with ``momentum``
    (:class:`eoslab.optimizers.sam.SAM`); ``label-noise``: SGD with ``momentum`` on targets
    with fresh Gaussian noise of std ``options["sigma"]`` drawn from ``seed``
    (:class:`eoslab.optimizers.label_noise.LabelNoiseSGD`).  ``options`` are checked against
    :data:`eoslab.core.options.OPTIMIZER_OPTIONS` (the others take none).
    """
    lr = check_lr(lr)
    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZER_NAMES)}")
    momentum = _check_unit("momentum", momentum)
    if not (isinstance(weight_decay, (int, float)) and math.isfinite(weight_decay)
            and weight_decay >= 0):
        raise ValueError(f"weight_decay={weight_decay!r} is not allowed; use a number >= 0")
    if name == "ngd":
        if momentum or weight_decay:
            raise ValueError(f"optimizer 'ngd' takes no momentum or weight_decay (got "
                             f"momentum={momentum!r}, weight_decay={weight_decay!r}); use 0")
        from eoslab.optimizers.normalized import (
            NormalizedGD,  # normalized imports check_lr from here
        )

        return NormalizedGD(params, lr=lr)
    options = check_optimizer_options(name, {} if options is None else options, fill=True)
    if name == "sam":
        from eoslab.optimizers.sam import SAM

        base = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        return SAM(base, rho=float(options["rho"]))
    if name == "label-noise":
        from eoslab.optimizers.label_noise import LabelNoiseSGD

        base = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        return LabelNoiseSGD(base, sigma=float(options["sigma"]), seed=seed)
    if name in ("gd", "sgd"):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name in ("momentum", "nesterov"):
        beta = momentum or 0.9
        return torch.optim.SGD(params, lr=lr, momentum=beta, weight_decay=weight_decay,
                               nesterov=name == "nesterov")
    b1, b2 = (_check_unit("betas[0]", betas[0]), _check_unit("betas[1]", betas[1]))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(b1, b2), eps=eps,
                                weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(b1, b2), eps=eps,
                                 weight_decay=weight_decay)
    return torch.optim.RMSprop(params, lr=lr, alpha=b2, eps=eps, weight_decay=weight_decay,
                               momentum=momentum)


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, steps: int,
                   options: Mapping | None = None):
    """A ``torch.optim.lr_scheduler`` stepped once per training step, or ``None``.

    ``cosine``: cosine decay to ``eta_min`` over ``steps``; ``step``: multiply by ``gamma``
    every ``step_size`` steps; ``linear-warmup``: linear ramp from ``start_factor`` over
    ``warmup`` steps; ``cosine-restarts``: SGDR (Loshchilov & Hutter 2017) with period
    ``T_0`` and multiplier ``T_mult``; ``triangular``: cyclical LR (Smith 2017) between
    ``base_lr`` (default lr/10) and the optimiser's lr with half-period ``step_size_up``.
    The options and their ranges are :data:`eoslab.core.options.SCHEDULE_OPTIONS`.

    Raises:
        ValueError: an unknown schedule, an option it does not take or a value out of range.
    """
    first = next((p for g in optimizer.param_groups for p in g["params"]), None)
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    options = {k: v for k, v in check_schedule_options(
        name, {} if options is None else options, dtype).items() if v is not None}
    sch = torch.optim.lr_scheduler
    if name == "constant":
        return None
    if name == "cosine":
        return sch.CosineAnnealingLR(optimizer, T_max=steps, eta_min=options.get("eta_min", 0.0))
    if name == "step":
        return sch.StepLR(optimizer, step_size=int(options.get("step_size", max(steps // 3, 1))),
                          gamma=float(options.get("gamma", 0.1)))
    if name == "linear-warmup":
        return sch.LinearLR(optimizer, start_factor=float(options.get("start_factor", 0.01)),
                            total_iters=int(options.get("warmup", max(steps // 10, 1))))
    if name == "cosine-restarts":
        return sch.CosineAnnealingWarmRestarts(
            optimizer, T_0=int(options.get("T_0", max(steps // 4, 1))),
            T_mult=int(options.get("T_mult", 1)), eta_min=float(options.get("eta_min", 0.0)))
    if name == "triangular":
        max_lr = optimizer.param_groups[0]["lr"]
        return sch.CyclicLR(optimizer, base_lr=float(options.get("base_lr", max_lr / 10)),
                            max_lr=max_lr,
                            step_size_up=int(options.get("step_size_up", max(steps // 8, 1))),
                            cycle_momentum=False)
    raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(SCHEDULE_NAMES)}")
