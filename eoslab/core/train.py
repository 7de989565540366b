"""The training loop: full-batch GD or minibatch SGD with any ``torch.optim`` optimiser.

One loop serves every chapter.  Step ``t`` evaluates the loss and gradient at
:math:`\\theta_t`, optionally records a history row for :math:`\\theta_t`, then lets the
optimiser move to :math:`\\theta_{t+1}` and the scheduler advance.  After the last step a
final row is recorded at :math:`\\theta_T`.

Full-batch gradients are accumulated over chunks of ``chunk_size`` examples, each chunk's
mean loss weighted by its share of the data, so the accumulated gradient equals the
unchunked one for nets without BatchNorm.  Losses with an outer transform (``sqrt-mse``)
are handled by the chain rule on the accumulated mean (:mod:`eoslab.core.steps`).

The loop avoids host synchronisation: per-step losses stay on the device and are checked
for divergence (non-finite, or above ``divergence_factor`` times the first loss) only at
the recording cadence, yet the step reported as the divergence step is exact.

Probes are callables ``probe(ctx) -> dict`` with an integer attribute ``every``; their
values join the history row of the steps they run at.  Callbacks receive each row as it
is recorded (for live charts); a :class:`threading.Event` passed as ``stop`` ends the run
cleanly from another thread.

The CPU speed layers of :mod:`eoslab.speed` (fast ``tanh``, retained heap) apply for the
duration of :func:`fit` through :func:`eoslab.speed.accelerated`; ``EOSLAB_SPEED=0`` turns
them off, and the model comes back with its own modules either way.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from eoslab import speed
from eoslab.core.data import Dataset
from eoslab.core.losses import Loss, accuracy, get_loss
from eoslab.core.steps import (
    BatchClosure,
    DivergenceWatch,
    Minibatches,
    check_data,
    evaluate,
    full_batch_gradient,
    param_norm,
)
from eoslab.curvature.objective import Objective

__all__ = ["Run", "ProbeContext", "BatchClosure", "fit", "full_batch_gradient"]

Row = dict
Callback = Callable[[Row], None]


@dataclass
class Run:
    """The outcome of a training run.

    Attributes:
        history: recorded rows, each a dict with at least ``step`` and ``loss``.
        status: ``"finished"``, ``"diverged"`` or ``"stopped"``.
        diverged_at: ``(step, loss)`` of the first divergent step, else ``None``.
        steps_done: optimiser steps taken.
        seconds: wall time of the loop.
        model: the trained module (not stored on disk).
        extra: anything a caller wants to keep with the run (e.g. averaged weights).
    """

    history: list[Row] = field(default_factory=list)
    status: str = "finished"
    diverged_at: tuple[int, float] | None = None
    steps_done: int = 0
    seconds: float = 0.0
    model: nn.Module | None = None
    extra: dict = field(default_factory=dict)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"

    def column(self, name: str) -> list:
        """One field across the history (``None`` where a row lacks it)."""
        return [row.get(name) for row in self.history]

    def summary(self) -> str:
        """One human line: the outcome and the first/last loss."""
        if not self.history:
            return f"{self.status} after {self.steps_done} steps"
        first, last = self.history[0], self.history[-1]
        text = f"loss {first['loss']:.4g} -> {last['loss']:.4g} in {self.steps_done} steps"
        if "acc" in last:
            text += f", train acc {last['acc']:.3f}"
        if self.diverged:
            step, value = self.diverged_at
            return f"DIVERGED at step {step} (loss = {value:.4g}); {text}"
        return f"{self.status}: {text} ({self.seconds:.1f} s)"

    def to_json(self) -> dict:
        return {"history": self.history, "status": self.status,
                "diverged_at": list(self.diverged_at) if self.diverged_at else None,
                "steps_done": self.steps_done, "seconds": self.seconds}

    @classmethod
    def from_json(cls, blob: dict) -> Run:
        at = blob.get("diverged_at")
        return cls(history=blob["history"], status=blob["status"],
                   diverged_at=(int(at[0]), float(at[1])) if at else None,
                   steps_done=blob["steps_done"], seconds=blob.get("seconds", 0.0))


@dataclass
class ProbeContext:
    """What a probe sees at step ``step``: the model at :math:`\\theta_t` and its objective."""

    step: int
    model: nn.Module
    optimizer: torch.optim.Optimizer
    objective: Objective
    data: Dataset
    lr: float


class _Loop:
    """The state of one :func:`fit` and its named steps.

    :meth:`step` takes step ``t`` (gradient at :math:`\\theta_t`, the history row if due,
    the optimiser's move), :meth:`record` builds a row, :meth:`diverged` checks the
    buffered losses, :meth:`save` writes a checkpoint and :meth:`finish` the final row.
    """

    def __init__(self, model, data: Dataset, loss: Loss, optimizer, scheduler, *,
                 batch_size, chunk_size, record_every, probes, callbacks, divergence_factor,
                 seed, eval_test, after_step):
        self.model, self.data, self.loss, self.optimizer = model, data, loss, optimizer
        self.scheduler, self.chunk_size, self.record_every = scheduler, chunk_size, record_every
        self.probes, self.callbacks, self.after_step = probes, callbacks, after_step
        self.run = Run(model=model)
        self.batches = Minibatches(data.n_train, batch_size, seed) if batch_size else None
        self.objective = Objective(model, loss, data.x_train, data.y_train, chunk_size,
                                   train_mode=False)
        self.watch = DivergenceWatch(divergence_factor)
        self.needs_closure = getattr(optimizer, "needs_closure", False)
        self.has_test = eval_test and data.x_test.shape[0] > 0
        self.t0 = time.perf_counter()

    def resume(self, state: dict) -> int:
        """Load a state saved by a checkpoint; returns the step to continue from."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.batches is not None and state.get("batches") is not None:
            self.batches.load(state["batches"])
        history = self.run.history = list(state["history"])
        if history:
            self.watch.reference = max(abs(history[0]["loss"]), 1e-12)
            self.t0 = time.perf_counter() - history[-1].get("time", 0.0)
        return int(state["step"])

    def due(self, step: int) -> bool:
        return step % self.record_every == 0 or any(step % p.every == 0 for p in self.probes)

    def step(self, step: int) -> bool:
        """Take step ``step``; ``False`` if a loss up to it diverged (then nothing moves)."""
        recording, data = self.due(step), self.data
        idx = self.batches.next() if self.batches is not None else None
        x, y = (data.x_train, data.y_train) if idx is None else (data.x_train[idx],
                                                                 data.y_train[idx])
        value, outputs = full_batch_gradient(self.model, self.loss, x, y, self.chunk_size,
                                             want_outputs=recording and idx is None)
        self.watch.add(step, value)
        if recording:
            if self.diverged():
                return False
            self.emit(self.record(step, value, outputs, idx))
        if self.needs_closure:
            self.optimizer.step(BatchClosure(self.model, self.loss, x, y, self.chunk_size))
        else:
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        for hook in self.after_step:
            hook(step, self.model, self.optimizer)
        self.run.steps_done = step + 1
        return True

    def record(self, step: int, loss_value: torch.Tensor | None, outputs, batch_idx) -> Row:
        """The history row at :math:`\\theta_t`.

        Loss (the step's own on a full batch, else re-evaluated on the training set),
        accuracy, gradient and weight norms, test metrics, the probes due, time.
        """
        model, data, loss, chunk = self.model, self.data, self.loss, self.chunk_size
        row: Row = {"step": step, "lr": self.optimizer.param_groups[0]["lr"]}
        if batch_idx is None and loss_value is not None:
            row["loss"] = float(loss_value)
            if data.classification and outputs is not None:
                row["acc"] = float(accuracy(outputs, data.y_train))
        else:
            row.update(evaluate(model, loss, data.x_train, data.y_train, chunk,
                                data.classification))
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads:
            row["grad_norm"] = param_norm(grads)
        row["weight_norm"] = param_norm(p.detach() for p in model.parameters())
        if self.has_test:
            test = evaluate(model, loss, data.x_test, data.y_test, chunk, data.classification)
            row.update({f"test_{k}": v for k, v in test.items()})
        for probe in self.probes:
            if step % probe.every == 0:
                ctx = ProbeContext(step, model, self.optimizer, self.objective, data, row["lr"])
                row.update(probe(ctx))
        row["time"] = time.perf_counter() - self.t0
        return row

    def emit(self, row: Row) -> None:
        self.run.history.append(row)
        for callback in self.callbacks:
            callback(row)

    def diverged(self) -> bool:
        """Check the buffered losses; at the first divergent one, mark the run as diverged."""
        bad = self.watch.check()
        if bad is not None:
            self.run.status, self.run.diverged_at, self.run.steps_done = "diverged", bad, bad[0]
        return bad is not None

    def save(self, checkpoint, step: int) -> bool:
        """Hand the state at ``step`` to ``checkpoint``; ``False`` (nothing saved) if diverged."""
        if self.diverged():
            return False
        checkpoint.save({"model": self.model.state_dict(),
                         "optimizer": self.optimizer.state_dict(),
                         "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                         "batches": self.batches.state() if self.batches else None,
                         "history": self.run.history, "step": step})
        return True

    def finish(self, steps: int) -> None:
        """The final row at :math:`\\theta_T`, unless a loss up to it diverged."""
        if self.diverged():
            return
        data = self.data
        value, outputs = full_batch_gradient(self.model, self.loss, data.x_train, data.y_train,
                                             self.chunk_size, want_outputs=True)
        limit = self.watch.factor * (self.watch.reference or float("inf"))
        if not math.isfinite(float(value)) or float(value) > limit:
            self.run.status, self.run.diverged_at = "diverged", (steps, float(value))
        else:
            self.emit(self.record(steps, value, outputs, None))


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} is not allowed; use an integer >= 1")


def fit(model: nn.Module, data: Dataset, loss: Loss | str, optimizer: torch.optim.Optimizer, *,
        steps: int, scheduler=None, batch_size: int | None = None,
        chunk_size: int | None = None, record_every: int = 10,
        probes: Sequence[Callable] = (), callbacks: Sequence[Callback] = (),
        stop: threading.Event | None = None, divergence_factor: float = 1e3,
        seed: int = 0, eval_test: bool = True, checkpoint=None, resume_state: dict | None = None,
        after_step: Sequence[Callable] = ()) -> Run:
    """Train ``model`` in place and return the :class:`Run`.

    The CPU speed layers (:mod:`eoslab.speed`) apply for the duration of the call unless
    ``EOSLAB_SPEED=0``; ``model`` comes back with its own modules.

    Args:
        model: the module to train, in place.
        data: the dataset (the training split; the test split for ``eval_test``).
        loss: a :class:`~eoslab.core.losses.Loss` or its name.
        optimizer: any ``torch.optim`` optimiser over ``model``'s parameters.
        steps: optimiser steps in total (a resumed run continues up to this count).
        scheduler: any ``torch.optim.lr_scheduler`` (stepped once per step) or ``None``.
        batch_size: ``None`` for full-batch GD, else minibatch SGD with epoch reshuffling.
        chunk_size: examples per forward pass when accumulating a full batch.
        record_every: history cadence in steps.
        probes: callables ``probe(ProbeContext) -> dict`` with attribute ``every``.
        callbacks: called with every recorded row, in order.
        stop: set it from another thread to end the run (status ``"stopped"``).
        divergence_factor: loss above this multiple of the first loss counts as diverged.
        seed: minibatch order.
        eval_test: also record test loss/accuracy when the dataset has a test split.
        checkpoint: an object with ``every`` and ``save(state)`` (see ``eoslab.core.store``).
        resume_state: a state saved by ``checkpoint`` to continue from.
        after_step: light hooks ``hook(step, model, optimizer)`` called after every
            optimiser step, with the model at :math:`\\theta_{t+1}` (e.g. weight averaging
            each step); unlike probes they add no history row.
    """
    loss = get_loss(loss)
    _check_count("steps", steps)
    _check_count("record_every", record_every)
    check_data(model, data, loss)
    model.train()
    with speed.accelerated(model):
        loop = _Loop(model, data, loss, optimizer, scheduler, batch_size=batch_size,
                     chunk_size=chunk_size, record_every=record_every, probes=probes,
                     callbacks=callbacks, divergence_factor=divergence_factor, seed=seed,
                     eval_test=eval_test, after_step=after_step)
        start = loop.resume(resume_state) if resume_state is not None else 0
        for step in range(start, steps):
            if stop is not None and stop.is_set():
                loop.run.status = "stopped"
                break
            if not loop.step(step):
                break
            if (checkpoint is not None and (step + 1) % checkpoint.every == 0
                    and not loop.save(checkpoint, step + 1)):
                break
        if loop.run.status == "finished":
            loop.finish(steps)
    loop.run.seconds = time.perf_counter() - loop.t0
    return loop.run
