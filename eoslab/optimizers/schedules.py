"""Learning-rate schedules as curves, and Smith's learning-rate range test.

:func:`schedule_curve` draws :math:`\\eta(t)` for a schedule by stepping the very
``torch.optim.lr_scheduler`` that :func:`eoslab.core.optim.make_scheduler` gives the training
loop, so the curve a reader designs is the schedule that drives training.  Among them,
SGDR (Loshchilov & Hutter, ICLR 2017, arXiv 1608.03983) restarts a cosine every
:math:`T_i` steps,

.. math::

    \\eta(t) = \\eta_{\\min} + \\tfrac12(\\eta_{\\max} - \\eta_{\\min})
    \\bigl(1 + \\cos(\\pi\\, T_{cur}/T_i)\\bigr),

and the triangular cyclical rate (Smith, WACV 2017, arXiv 1506.01186) climbs linearly from
``base_lr`` to :math:`\\eta_{\\max}` in ``step_size_up`` steps and back.

:func:`lr_range_test` is Smith's recipe for the bounds of a cyclical schedule: one short
run whose rate grows exponentially, :math:`\\eta_t = \\eta_0 (\\eta_1/\\eta_0)^{t/(T-1)}`,
recording the loss; where the (smoothed) loss starts to fall is the lower bound, where it
stops falling the upper one.  It runs through :func:`eoslab.core.train.fit` with
``torch.optim.lr_scheduler.ExponentialLR`` and stops once the smoothed loss exceeds
``stop_factor`` times its best value.

Example:
    >>> [round(v, 3) for v in schedule_curve("step", 1.0, 6, {"step_size": 2, "gamma": 0.5})]
    [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from eoslab.core.config import TrainConfig
from eoslab.core.optim import SCHEDULE_NAMES, check_lr, make_scheduler

__all__ = [
    "RangeTest",
    "catapults",
    "designer_options",
    "edge_ratios",
    "lr_range_test",
    "restart_steps",
    "schedule_curve",
    "smooth_losses",
    "suggest_range",
]


def schedule_curve(name: str, lr: float, steps: int, options: Mapping | None = None) -> list:
    """:math:`\\eta(t)` for ``t = 0 .. steps-1``: the rate step ``t`` of training uses.

    Built by stepping :func:`eoslab.core.optim.make_scheduler`'s scheduler on a throw-away
    optimiser (no training), so it is exactly the schedule :func:`eoslab.core.train.fit` follows.

    >>> [round(v, 6) for v in schedule_curve("cosine-restarts", 1.0, 6, {"T_0": 3})][:4]
    [1.0, 0.75, 0.25, 1.0]
    """
    lr = check_lr(lr)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} is not allowed; use an integer >= 1")
    if name not in SCHEDULE_NAMES:
        raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(SCHEDULE_NAMES)}")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    scheduler = make_scheduler(name, opt, steps, options)
    out = []
    for _ in range(steps):
        out.append(float(opt.param_groups[0]["lr"]))
        if scheduler is not None:
            opt.step()
            scheduler.step()
    return out


def designer_options(name: str, lr: float, period: int, low: float = 0.1,
                     gamma: float = 0.5) -> dict:
    """The :func:`eoslab.core.optim.make_scheduler` options of a schedule given by three knobs.

    ``period``: steps per cycle (SGDR's :math:`T_0`, a full triangle, the step decay's
    interval, the warm-up length); ``low``: the lowest rate as a fraction of ``lr``
    (SGDR's/cosine's :math:`\\eta_{\\min}`, the triangle's ``base_lr``, the warm-up's start);
    ``gamma``: the step decay's factor.

    >>> designer_options("triangular", 0.4, 100, 0.25)
    {'base_lr': 0.1, 'step_size_up': 50}
    """
    check_lr(lr)
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ValueError(f"period={period!r} is not allowed; use an integer >= 1")
    if not (isinstance(low, (int, float)) and 0 <= low <= 1):
        raise ValueError(f"low={low!r} is not allowed; use a fraction in [0, 1]")
    if not (isinstance(gamma, (int, float)) and 0 < gamma <= 1):
        raise ValueError(f"gamma={gamma!r} is not allowed; use a number in (0, 1]")
    options = {"constant": {}, "cosine": {"eta_min": low * lr},
               "step": {"step_size": period, "gamma": gamma},
               "linear-warmup": {"start_factor": max(low, 1e-3), "warmup": period},
               "cosine-restarts": {"T_0": period, "eta_min": low * lr},
               "triangular": {"base_lr": low * lr, "step_size_up": max(period // 2, 1)}}
    if name not in options:
        raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(options)}")
    return {k: round(v, 12) if isinstance(v, float) else v for k, v in options[name].items()}


def restart_steps(curve: Sequence[float], jump: float = 1.5) -> list[int]:
    """Steps at which :math:`\\eta` jumps up by more than ``jump`` times (warm restarts).

    >>> restart_steps([1.0, 0.5, 0.1, 1.0, 0.5])
    [3]
    """
    return [t for t in range(1, len(curve)) if curve[t] > jump * curve[t - 1]]


def smooth_losses(losses: Sequence[float], beta: float = 0.8) -> list[float]:
    """Bias-corrected exponential moving average of ``losses``.

    .. math:: m_t = \\beta m_{t-1} + (1-\\beta) L_t, \\qquad \\hat m_t = m_t / (1 - \\beta^{t+1})

    >>> [round(v, 9) for v in smooth_losses([2.0, 2.0, 2.0])]
    [2.0, 2.0, 2.0]
    """
    if not 0 <= beta < 1:
        raise ValueError(f"beta={beta!r} is not allowed; use a number in [0, 1)")
    out, m = [], 0.0
    for t, value in enumerate(losses):
        m = beta * m + (1 - beta) * value
        out.append(m / (1 - beta ** (t + 1)))
    return out


def suggest_range(lrs: Sequence[float], smoothed: Sequence[float], start_drop: float = 0.1
                  ) -> tuple[float, float, float]:
    """``(low, high, steepest)`` from a range test's smoothed loss.

    ``low``: the first rate at which the loss has fallen by ``start_drop`` of its total
    fall :math:`L_0 - L_{\\min}` (it starts falling).  ``high``: the rate at the first local
    minimum of the smoothed loss after ``low`` (it stops falling; with full-batch GD the
    loss rises there once :math:`\\eta` has passed :math:`2/S`).  ``steepest``: the rate
    of the most negative slope :math:`dL/d\\log\\eta` before ``high``.

    >>> suggest_range([0.01, 0.1, 1.0, 10.0], [1.0, 0.8, 0.2, 5.0])
    (0.1, 1.0, 1.0)
    """
    values = np.asarray(smoothed, dtype=np.float64)
    rates = np.asarray(lrs, dtype=np.float64)
    if len(values) < 2 or len(values) != len(rates):
        raise ValueError(f"need at least 2 matching (lr, loss) pairs, got {len(rates)} and "
                         f"{len(values)}")
    finite = np.where(np.isfinite(values), values, np.inf)
    best = int(np.argmin(finite))
    fall = values[0] - values[best]
    low_at = next((t for t in range(best + 1) if values[0] - values[t] >= start_drop * fall),
                  0)
    best = next((t for t in range(low_at, best) if finite[t + 1] > finite[t]), best)
    slopes = np.diff(values[:best + 1]) / np.diff(np.log(rates[:best + 1])) if best else []
    steep_at = int(np.argmin(slopes)) + 1 if len(slopes) else 0
    return float(rates[low_at]), float(rates[best]), float(rates[steep_at])


@dataclass
class RangeTest:
    """The outcome of :func:`lr_range_test`.

    Attributes:
        lrs, losses, smoothed: per step, the rate used and the training loss at
            :math:`\\theta_t` (raw and smoothed).
        low, high, steepest: the suggested bounds (:func:`suggest_range`).
        stopped_early: whether the loss blew up before ``lr_max``.
    """

    lrs: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    smoothed: list = field(default_factory=list)
    low: float = float("nan")
    high: float = float("nan")
    steepest: float = float("nan")
    stopped_early: bool = False

    def to_json(self) -> dict:
        return dict(self.__dict__)


def lr_range_test(config: TrainConfig, lr_min: float = 1e-3, lr_max: float = 10.0,
                  steps: int = 100, *, beta: float = 0.8, stop_factor: float = 4.0,
                  callbacks: Sequence[Callable] = (), stop: threading.Event | None = None
                  ) -> RangeTest:
    """Smith's range test on the data, model, loss, optimiser and batch of ``config``.

    The rate grows from ``lr_min`` to ``lr_max`` geometrically over ``steps`` steps (the
    config's own lr and schedule are ignored); the loss is recorded every step and the run
    stops when the smoothed loss passes ``stop_factor`` times its minimum or is not finite.
    ``callbacks`` get each history row of :func:`eoslab.core.train.fit`.
    """
    from eoslab.core.experiment import build_setup
    from eoslab.core.train import fit

    lr_min, lr_max = check_lr(lr_min), check_lr(lr_max)
    if lr_max <= lr_min:
        raise ValueError(f"lr_max={lr_max!r} is not allowed; it must exceed lr_min={lr_min!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps={steps!r} is not allowed; use an integer >= 2")
    setup = build_setup(config.replace(lr=lr_min, schedule="constant", steps=steps))
    gamma = (lr_max / lr_min) ** (1.0 / (steps - 1))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(setup.optimizer, gamma=gamma)
    halt = threading.Event()
    result = RangeTest()
    state = {"m": 0.0, "best": math.inf}

    def watch(row):
        if row["step"] >= steps:  # fit's final row at theta_T: not a step of the test
            return
        loss = row["loss"]
        t = len(result.losses)
        state["m"] = beta * state["m"] + (1 - beta) * loss
        smoothed = state["m"] / (1 - beta ** (t + 1))
        result.lrs.append(row["lr"])
        result.losses.append(loss)
        result.smoothed.append(smoothed)
        state["best"] = min(state["best"], smoothed)
        if not math.isfinite(smoothed) or smoothed > stop_factor * state["best"]:
            result.stopped_early = True
            halt.set()
        if stop is not None and stop.is_set():
            halt.set()
        for callback in callbacks:
            callback(row)

    run = fit(setup.model, setup.data, config.loss, setup.optimizer, steps=steps,
              scheduler=scheduler, batch_size=config.batch_size, chunk_size=config.chunk_size,
              record_every=1, callbacks=[watch], stop=halt, divergence_factor=1e12,
              seed=config.seed, eval_test=False)
    if run.diverged:
        result.stopped_early = True
    if len(result.lrs) >= 2:
        result.low, result.high, result.steepest = suggest_range(result.lrs, result.smoothed)
    return result


def edge_ratios(history: Sequence[dict]) -> list[tuple[int, float]]:
    """``(step, S / (2/eta(t)))`` for each history row with a sharpness: 1 is the edge.

    >>> edge_ratios([{"step": 0, "lr": 0.5, "sharpness": 2.0}, {"step": 1, "lr": 0.5}])
    [(0, 0.5)]
    """
    return [(r["step"], r["sharpness"] * r["lr"] / 2.0) for r in history
            if r.get("sharpness") is not None and r.get("lr")]


def catapults(history: Sequence[dict], window: int = 60, jump: float = 1.5) -> list[dict]:
    """What happens after each warm restart (an upward jump of ``lr`` by ``jump`` times).

    For a restart at step ``r`` (the first recorded row whose rate jumped): ``loss_before``
    and ``sharp_before`` at the last row before it, ``loss_peak`` the largest loss and
    ``sharp_after`` the smallest sharpness within ``window`` steps,
    ``edge`` the new :math:`2/\\eta`.  A catapult (Lewkowycz et al. 2020) is
    ``sharp_before > edge`` followed by ``spike = loss_peak/loss_before > 1`` and
    ``sharp_after`` back near or below ``edge``.

    >>> rows = [{"step": 0, "lr": 0.1, "loss": 1.0, "sharpness": 9.0},
    ...         {"step": 10, "lr": 0.4, "loss": 3.0, "sharpness": 8.0},
    ...         {"step": 20, "lr": 0.4, "loss": 0.5, "sharpness": 4.5}]
    >>> c = catapults(rows)[0]
    >>> c["step"], c["spike"], c["sharp_before"], c["sharp_after"], c["edge"]
    (10, 3.0, 9.0, 4.5, 5.0)
    """
    out = []
    rows = [r for r in history if r.get("lr")]
    for i in range(1, len(rows)):
        if rows[i]["lr"] <= jump * rows[i - 1]["lr"]:
            continue
        start = rows[i]["step"]
        before = rows[i - 1]
        after = [r for r in rows[i:] if r["step"] <= start + window]
        if len(after) < 2:  # a restart at the very end has no aftermath to read
            continue
        sharp = [r["sharpness"] for r in after if r.get("sharpness") is not None]
        sharp_before = next((r["sharpness"] for r in reversed(rows[:i])
                             if r.get("sharpness") is not None), None)
        peak = max(r["loss"] for r in after)
        out.append({"step": start, "loss_before": before["loss"], "loss_peak": peak,
                    "spike": peak / before["loss"], "sharp_before": sharp_before,
                    "sharp_after": min(sharp) if sharp else None,
                    "edge": 2.0 / rows[i]["lr"]})
    return out
