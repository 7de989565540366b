"""How the playground trains, with the probes the view asks for.

A config goes through :func:`eoslab.run`, a user's module through
:func:`eoslab.core.train.fit`.
Both attach the :class:`~eoslab.ui.playground.slices.Snapshots` probe (parameters at
the sharpness cadence), the top-``k`` eigenvalues when ``k > 1``
(:class:`~eoslab.curvature.sharpness.SharpnessProbe`) and Hutchinson's trace estimate
:math:`\\operatorname{tr} H \\approx \\frac1m \\sum_i z_i^\\top H z_i` with ``m``
Rademacher probes when ``trace`` is on (:func:`eoslab.curvature.trace.hutchinson`).
These extra columns are not part of the run's store key: a stored run keeps the columns
it was trained with.
"""

from __future__ import annotations

from eoslab.core.experiment import run as run_config
from eoslab.core.train import fit
from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.sharpness import SharpnessProbe
from eoslab.curvature.trace import hutchinson

__all__ = ["TraceProbe", "train_config", "train_user"]


class TraceProbe:
    """``trace``: Hutchinson's estimate of :math:`\\operatorname{tr}\\nabla^2 L` (``m`` probes)."""

    def __init__(self, every: int, m: int = 20, seed: int = 0):
        self.every, self.m, self.seed = every, m, seed

    def __call__(self, ctx) -> dict:
        return {"trace": float(hutchinson(HessianOperator(ctx.objective), m=self.m,
                                          seed=self.seed).estimate)}


def _probes(every: int, snapshots, k: int, trace: bool, sharpness: bool) -> list:
    probes = [snapshots]
    if sharpness or k > 1:
        probes.append(SharpnessProbe(every=every, k=k))
    if trace:
        probes.append(TraceProbe(every))
    return probes


def train_config(config, store, snapshots, on_row, stop, k: int = 1, trace: bool = False):
    """:func:`eoslab.run` of ``config`` (stored unless stopped), with the view's probes."""
    every = config.sharpness_every or config.record_every
    return run_config(config, callbacks=[on_row], stop=stop, store=store or False,
                      reuse=False, probes=_probes(every, snapshots, k, trace, False))


def train_user(problem, values: dict, snapshots, on_row, stop, k: int = 1,
               trace: bool = False):
    """:func:`fit` of a user's module from its starting state (never stored)."""
    problem.reset()
    every = values["sharpness_every"] or max(1, min(10, values["steps"]))
    return fit(problem.model, problem.data, problem.loss, problem.optimizer,
               steps=values["steps"], record_every=min(every, 10),
               probes=_probes(every, snapshots, k, trace, True), callbacks=[on_row],
               stop=stop)
