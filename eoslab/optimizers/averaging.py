"""Weight averaging (SWA, EMA), FGE snapshots and ensembles, as probes of the training loop.

Each is a probe of :func:`eoslab.core.train.fit`.

* SWA -- Izmailov, Podoprikhin, Garipov, Vetrov, Wilson, "Averaging Weights Leads to Wider
  Optima and Better Generalization", UAI 2018 (arXiv 1803.05407): the running mean of the
  iterates collected every ``every`` steps from ``start`` on,
  :math:`w_{\\mathrm{SWA}} = \\frac1n \\sum_{i=1}^{n} w_{t_i}`, under a constant or cyclical
  learning rate (:class:`SWASchedule`), with BatchNorm statistics recomputed for the
  averaged weights at the end (:func:`recalibrate_bn`).
* EMA -- :math:`\\bar w \\leftarrow \\beta \\bar w + (1-\\beta) w_t`.
* FGE -- Garipov et al. 2018 (arXiv 1802.10026): snapshots at the low points of a cyclical
  (triangular) schedule; the ensemble predicts the mean of the members' softmax
  probabilities (classification) or of their outputs (regression), :func:`evaluate_ensemble`.

All three reuse ``torch.optim.swa_utils`` (``AveragedModel``, ``SWALR``, ``update_bn``).
They plug into ``fit(..., probes=[...])``: a probe runs at the steps divisible by its
``every`` and sees :math:`\\theta_t` (before step ``t``'s update), which also records a
history row at those steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call
from torch.optim.swa_utils import SWALR, AveragedModel, get_ema_multi_avg_fn, update_bn

from eoslab.core.losses import accuracy, get_loss
from eoslab.core.models import has_batchnorm
from eoslab.core.params import Params
from eoslab.curvature.objective import iter_chunks

__all__ = [
    "SWASchedule",
    "Snapshots",
    "WeightAverage",
    "ensemble_outputs",
    "evaluate_ensemble",
    "recalibrate_bn",
]

def _every(every) -> int:
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every={every!r} is not allowed; use an integer >= 1")
    return every


def recalibrate_bn(model: nn.Module, x: torch.Tensor, batch_size: int | None = None
                   ) -> nn.Module:
    """Recompute BatchNorm running statistics of ``model`` on inputs ``x`` (in place).

    ``torch.optim.swa_utils.update_bn`` over chunks of ``batch_size`` examples: a
    cumulative average of the batch statistics.  Models without BatchNorm are returned
    unchanged.
    """
    if has_batchnorm(model):
        update_bn([xc for xc, _, _ in iter_chunks(x, x, batch_size)], model)
    return model


class WeightAverage:
    """A probe keeping the SWA mean (``kind="swa"``) or the EMA (``kind="ema"``) of the weights.

    Args:
        model: the model being trained (copied once by ``AveragedModel``).
        start: first step averaged; every: averaging period in steps.
        kind: ``"swa"`` (equal weights) or ``"ema"`` with ``decay``.

    >>> import torch
    >>> avg = WeightAverage(torch.nn.Linear(2, 1), every=5)
    >>> avg.every, avg.n_averaged
    (5, 0)
    """

    def __init__(self, model: nn.Module, *, start: int = 0, every: int = 1, kind: str = "swa",
                 decay: float = 0.999):
        self.every, self.start, self.kind = _every(every), int(start), kind
        if kind == "swa":
            self.averaged = AveragedModel(model)
        elif kind == "ema":
            if not 0.0 < decay < 1.0:
                raise ValueError(f"decay={decay!r} is not allowed; use a number in (0, 1)")
            self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay),
                                          use_buffers=True)
        else:
            raise ValueError(f"kind={kind!r} is not allowed; allowed: swa, ema")

    @property
    def n_averaged(self) -> int:
        return int(self.averaged.n_averaged)

    def __call__(self, ctx) -> dict:
        if ctx.step >= self.start:
            self.averaged.update_parameters(ctx.model)
        return {f"{self.kind}_n": self.n_averaged}

    def params(self) -> Params:
        """The averaged trainable parameters, keyed like the model's."""
        return {k: v.detach().clone() for k, v in self.averaged.module.named_parameters()
                if v.requires_grad}

    def finalize(self, x: torch.Tensor, batch_size: int | None = None) -> nn.Module:
        """The averaged model with BatchNorm statistics recomputed on ``x`` (SWA's last step)."""
        if self.n_averaged == 0:
            raise ValueError("nothing was averaged: no probe step reached start="
                             f"{self.start}; lower start or train longer")
        return recalibrate_bn(self.averaged.module, x, batch_size)


class Snapshots:
    """A probe copying the model's state every ``every`` steps from ``start`` (FGE).

    With ``make_scheduler("triangular", ..., {"step_size_up": s})`` the learning rate is
    lowest at the multiples of ``2 s``: use ``every=2 * s``.
    """

    def __init__(self, *, start: int = 0, every: int = 1, max_snapshots: int | None = None):
        self.every, self.start, self.max_snapshots = _every(every), int(start), max_snapshots
        self.states: list[Params] = []
        self.steps: list[int] = []

    def __call__(self, ctx) -> dict:
        if ctx.step >= self.start and (self.max_snapshots is None
                                       or len(self.states) < self.max_snapshots):
            self.states.append({k: v.detach().clone() for k, v in ctx.model.state_dict().items()})
            self.steps.append(ctx.step)
            self._names = [n for n, p in ctx.model.named_parameters() if p.requires_grad]
        return {"snapshots": len(self.states)}

    @property
    def params(self) -> list[Params]:
        """The trainable parameters of each snapshot."""
        return [{n: s[n] for n in self._names} for s in self.states]


class SWASchedule:
    """Learning rate for SWA.

    The ``base`` scheduler (or a constant rate) until ``swa_start``, then

    * ``cycle=None``: ``SWALR`` annealing linearly to the constant ``swa_lr`` over
      ``anneal_steps``;
    * ``cycle=c``: the cyclical rate of Izmailov et al.,
      :math:`\\alpha(i) = (1 - \\tau)\\alpha_1 + \\tau \\alpha_2`,
      :math:`\\tau = (((i - s) \\bmod c) + 1)/c`, from :math:`\\alpha_1` = the optimiser's
      rate at ``swa_start`` down to :math:`\\alpha_2` = ``swa_lr``; average with
      ``WeightAverage(start=swa_start + c, every=c)`` to collect at the cycle ends.

    Stepped once per training step by :func:`~eoslab.core.train.fit` like any scheduler.
    """

    def __init__(self, optimizer, *, swa_start: int, swa_lr: float, anneal_steps: int = 1,
                 cycle: int | None = None, base=None):
        if not swa_lr > 0:
            raise ValueError(f"swa_lr={swa_lr!r} is not allowed; use a number > 0")
        if cycle is not None:
            _every(cycle)
        self.optimizer, self.swa_start, self.swa_lr = optimizer, int(swa_start), float(swa_lr)
        self.anneal_steps, self.cycle, self.base = int(anneal_steps), cycle, base
        self.step_count, self._high = 0, None
        self._swalr = None if cycle is not None else SWALR(
            optimizer, swa_lr=self.swa_lr, anneal_epochs=max(self.anneal_steps, 1),
            anneal_strategy="linear")  # leaves the rate unchanged until stepped

    def step(self) -> None:
        self.step_count += 1
        i = self.step_count
        if i < self.swa_start:
            if self.base is not None:
                self.base.step()
            return
        if self._swalr is not None:
            self._swalr.step()
            return
        if self._high is None:
            self._high = [g["lr"] for g in self.optimizer.param_groups]
        tau = (((i - self.swa_start) % self.cycle) + 1) / self.cycle
        for group, high in zip(self.optimizer.param_groups, self._high):
            group["lr"] = (1 - tau) * high + tau * self.swa_lr

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"step_count": self.step_count, "high": self._high,
                "swalr": self._swalr.state_dict() if self._swalr is not None else None,
                "base": self.base.state_dict() if self.base is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self.step_count, self._high = state["step_count"], state["high"]
        if self.base is not None and state.get("base") is not None:
            self.base.load_state_dict(state["base"])
        if self._swalr is not None and state.get("swalr") is not None:
            self._swalr.load_state_dict(state["swalr"])


@torch.no_grad()
def ensemble_outputs(model: nn.Module, members: Sequence[Params], x: torch.Tensor, *,
                     probabilities: bool, chunk_size: int | None = None) -> torch.Tensor:
    """Mean over members of softmax probabilities (``probabilities=True``) or raw outputs.

    Each member is a state or parameter dict for ``model`` (missing entries keep the
    model's own values); every member is evaluated in eval mode.
    """
    if len(members) == 0:
        raise ValueError("the ensemble is empty; give at least one member")
    was = model.training
    model.eval()
    try:
        total = None
        for member in members:
            outs = [functional_call(model, member, (xc,)) for xc, _, _ in
                    iter_chunks(x, x, chunk_size)]
            out = torch.cat(outs)
            out = out.softmax(dim=-1) if probabilities else out
            total = out if total is None else total + out
        return total / len(members)
    finally:
        model.train(was)


def evaluate_ensemble(model: nn.Module, members: Sequence[Params], loss, x: torch.Tensor,
                      y: torch.Tensor, *, chunk_size: int | None = None) -> dict[str, float]:
    """Loss and accuracy of the ensemble's prediction.

    Cross-entropy: :math:`-\\frac1n\\sum_i \\log \\bar p_{y_i}(x_i)` with :math:`\\bar p` the
    mean softmax.  Other losses (MSE): the loss of the mean output.
    """
    loss = get_loss(loss)
    probs = loss.name in ("ce", "cross-entropy", "sqrt-ce")
    out = ensemble_outputs(model, members, x, probabilities=probs, chunk_size=chunk_size)
    if probs:
        logp = out.clamp_min(1e-30).log()
        value = loss.finish(loss.per_example_mean(logp, y))  # log_softmax(log p) = log p
    else:
        value = loss(out, y)
    row = {"loss": float(value)}
    if (y.dim() == 1 and not y.is_floating_point()) or (y.dim() == 2 and y.shape[1] > 1):
        row["acc"] = float(accuracy(out, y))
    return row
