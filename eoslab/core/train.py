"""The training loop: full-batch GD or minibatch SGD with any ``torch.optim`` optimiser.

One loop serves every chapter.  Step ``t`` evaluates the loss and gradient at
:math:`\\theta_t`, optionally records a history row for :math:`\\theta_t`, then lets the
optimiser move to :math:`\\theta_{t+1}` and the scheduler advance.  After the last step a
final row is recorded at :math:`\\theta_T`.

Full-batch gradients are accumulated over chunks of ``chunk_size`` examples, each chunk's
mean loss weighted by its share of the data, so the accumulated gradient equals the
unchunked one for nets without BatchNorm.  Losses with an outer transform (``sqrt-mse``)
are handled by the chain rule on the accumulated mean.

The loop avoids host synchronisation: per-step losses stay on the device and are checked
for divergence (non-finite, or above ``divergence_factor`` times the first loss) only at
the recording cadence, yet the step reported as the divergence step is exact.

Probes are callables ``probe(ctx) -> dict`` with an integer attribute ``every``; their
values join the history row of the steps they run at.  Callbacks receive each row as it
is recorded (for live charts); a :class:`threading.Event` passed as ``stop`` ends the run
cleanly from another thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from eoslab.core.data import Dataset
from eoslab.core.losses import Loss, accuracy, get_loss
from eoslab.curvature.objective import Objective, iter_chunks
from eoslab.speed.heap import retained_heap

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


def full_batch_gradient(model: nn.Module, loss: Loss, x: torch.Tensor, y: torch.Tensor,
                        chunk_size: int | None = None, want_outputs: bool = False):
    """Zero the grads, then accumulate :math:`\\nabla L(\\theta)` over chunks into ``.grad``.

    Returns ``(loss, outputs)``: the full-batch loss as a 0-d tensor (outer transform
    included) and, if asked, the concatenated outputs (for accuracy).
    """
    for p in model.parameters():
        p.grad = None
    total, outputs = None, []
    for xc, yc, weight in iter_chunks(x, y, chunk_size):
        out = model(xc)
        value = loss.per_example_mean(out, yc)
        (value * weight if weight != 1.0 else value).backward()
        value = value.detach() * weight
        total = value if total is None else total + value
        if want_outputs:
            outputs.append(out.detach())
    if loss.outer is not None:
        mean = total.clone().requires_grad_(True)
        with torch.enable_grad():
            finished = loss.outer(mean)
            (scale,) = torch.autograd.grad(finished, mean)
        for p in model.parameters():
            if p.grad is not None:
                p.grad.mul_(scale)
        total = finished.detach()
    return total, (torch.cat(outputs) if want_outputs else None)


class BatchClosure:
    """The closure handed to optimisers with ``needs_closure = True`` (e.g. SAM).

    Calling it zeroes the grads and accumulates the gradient of the step's batch
    ``(x, y)`` at the model's *current* parameters into ``.grad``, returning the loss.
    Passing ``x, y`` evaluates a sub-batch instead (m-sharpness splits the batch).
    """

    def __init__(self, model: nn.Module, loss: Loss, x: torch.Tensor, y: torch.Tensor,
                 chunk_size: int | None):
        self.model, self.loss, self.x, self.y, self.chunk_size = model, loss, x, y, chunk_size

    def __call__(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None):
        x = self.x if x is None else x
        y = self.y if y is None else y
        with torch.enable_grad():
            return full_batch_gradient(self.model, self.loss, x, y, self.chunk_size)[0]


def _norm(tensors: Iterable[torch.Tensor]) -> float:
    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors))))


class _Minibatches:
    """Epoch-wise shuffled minibatch indices from a seeded generator (state is checkpointable)."""

    def __init__(self, n: int, batch_size: int, seed: int):
        if batch_size > n:
            raise ValueError(f"batch_size={batch_size} exceeds the {n} training examples; use "
                             f"a value in [1, {n}] or None for full batch")
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self._order, self._pos = torch.empty(0, dtype=torch.long), n

    def next(self) -> torch.Tensor:
        if self._pos + self.batch_size > self.n:
            self._order, self._pos = torch.randperm(self.n, generator=self.generator), 0
        idx = self._order[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx

    def state(self) -> dict:
        return {"rng": self.generator.get_state(), "order": self._order, "pos": self._pos}

    def load(self, state: dict) -> None:
        self.generator.set_state(state["rng"])
        self._order, self._pos = state["order"], state["pos"]


@torch.no_grad()
def _evaluate(model: nn.Module, loss: Loss, x, y, chunk_size, classification: bool) -> dict:
    was = model.training
    model.eval()
    try:
        loss_sum = acc_sum = 0.0
        for xc, yc, w in iter_chunks(x, y, chunk_size):
            out = model(xc)
            loss_sum += w * loss.per_example_mean(out, yc)
            if classification:
                acc_sum += w * accuracy(out, yc)
        row = {"loss": float(loss.finish(torch.as_tensor(loss_sum)))}
        if classification:
            row["acc"] = float(acc_sum)
        return row
    finally:
        model.train(was)


class _DivergenceWatch:
    """Buffers per-step losses on the device; finds the first divergent step when asked."""

    def __init__(self, factor: float):
        self.factor, self.reference = factor, None
        self.pending: list[tuple[int, torch.Tensor]] = []

    def add(self, step: int, loss: torch.Tensor) -> None:
        self.pending.append((step, loss))

    def check(self) -> tuple[int, float] | None:
        if not self.pending:
            return None
        values = torch.stack([v for _, v in self.pending]).double().cpu().tolist()
        steps = [s for s, _ in self.pending]
        self.pending = []
        if self.reference is None:
            self.reference = max(abs(values[0]), 1e-12)
        for step, value in zip(steps, values):
            if not math.isfinite(value) or value > self.factor * self.reference:
                return step, value
        return None


def _check_data(model: nn.Module, data: Dataset, loss: Loss) -> None:
    if data.n_train == 0:
        raise ValueError("the training set is empty (0 examples)")
    param = next(model.parameters(), None)
    if param is not None and param.dtype != data.x_train.dtype:
        raise ValueError(f"the model's parameters are {param.dtype} but the data is "
                         f"{data.x_train.dtype}; build both with the same dtype")
    if param is not None and param.device != data.x_train.device:
        raise ValueError(f"the model is on {param.device} but the data is on "
                         f"{data.x_train.device}; put both on the same device")
    with torch.no_grad():
        try:
            out = model(data.x_train[:2])
        except RuntimeError as err:
            raise ValueError(f"the model cannot take inputs of shape "
                             f"{tuple(data.x_train.shape[1:])}: {err}") from None
        target = data.y_train[:2]
        if out.shape[0] != target.shape[0] or (target.is_floating_point() and
                                               out.shape != target.shape):
            raise ValueError(f"model output shape {tuple(out.shape[1:])} does not match target "
                             f"shape {tuple(target.shape[1:])} for loss {loss.name!r}")


@retained_heap()  # large activations are reused, not page-faulted in every step
def fit(model: nn.Module, data: Dataset, loss: Loss | str, optimizer: torch.optim.Optimizer, *,
        steps: int, scheduler=None, batch_size: int | None = None,
        chunk_size: int | None = None, record_every: int = 10,
        probes: Sequence[Callable] = (), callbacks: Sequence[Callback] = (),
        stop: threading.Event | None = None, divergence_factor: float = 1e3,
        seed: int = 0, eval_test: bool = True, checkpoint=None, resume_state: dict | None = None,
        after_step: Sequence[Callable] = ()) -> Run:
    """Train ``model`` in place and return the :class:`Run`.

    Args:
        model, data, loss, optimizer: what to train, on what, against what, with what.
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
            optimiser step, with the model at :math:`\theta_{t+1}` (e.g. weight averaging
            each step); unlike probes they add no history row.
    """
    loss = get_loss(loss)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} is not allowed; use an integer >= 1")
    if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1:
        raise ValueError(f"record_every={record_every!r} is not allowed; use an integer >= 1")
    _check_data(model, data, loss)
    model.train()
    run = Run(model=model)
    batches = _Minibatches(data.n_train, batch_size, seed) if batch_size else None
    start = 0
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        if scheduler is not None and resume_state.get("scheduler") is not None:
            scheduler.load_state_dict(resume_state["scheduler"])
        if batches is not None and resume_state.get("batches") is not None:
            batches.load(resume_state["batches"])
        run.history = list(resume_state["history"])
        start = int(resume_state["step"])
    objective = Objective(model, loss, data.x_train, data.y_train, chunk_size,
                          train_mode=False)
    watch = _DivergenceWatch(divergence_factor)
    if run.history:
        watch.reference = max(abs(run.history[0]["loss"]), 1e-12)
    needs_closure = getattr(optimizer, "needs_closure", False)
    has_test = eval_test and data.x_test.shape[0] > 0
    t0 = time.perf_counter() - (run.history[-1].get("time", 0.0) if run.history else 0.0)

    def emit(row: Row) -> None:
        run.history.append(row)
        for callback in callbacks:
            callback(row)

    def record(step: int, loss_value: torch.Tensor | None, outputs, batch_idx) -> Row:
        row: Row = {"step": step, "lr": optimizer.param_groups[0]["lr"]}
        if batch_idx is None and loss_value is not None:
            row["loss"] = float(loss_value)
            if data.classification and outputs is not None:
                row["acc"] = float(accuracy(outputs, data.y_train))
        else:
            row.update(_evaluate(model, loss, data.x_train, data.y_train, chunk_size,
                                 data.classification))
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads:
            row["grad_norm"] = _norm(grads)
        row["weight_norm"] = _norm(p.detach() for p in model.parameters())
        if has_test:
            test = _evaluate(model, loss, data.x_test, data.y_test, chunk_size,
                             data.classification)
            row.update({f"test_{k}": v for k, v in test.items()})
        for probe in probes:
            if step % probe.every == 0:
                ctx = ProbeContext(step, model, optimizer, objective, data, row["lr"])
                row.update(probe(ctx))
        row["time"] = time.perf_counter() - t0
        return row

    def due(step: int) -> bool:
        return step % record_every == 0 or any(step % p.every == 0 for p in probes)

    step = start
    for step in range(start, steps):
        if stop is not None and stop.is_set():
            run.status = "stopped"
            break
        recording = due(step)
        idx = batches.next() if batches is not None else None
        x, y = (data.x_train, data.y_train) if idx is None else (data.x_train[idx],
                                                                 data.y_train[idx])
        value, outputs = full_batch_gradient(model, loss, x, y, chunk_size,
                                             want_outputs=recording and idx is None)
        watch.add(step, value)
        if recording:
            bad = watch.check()
            if bad is not None:
                run.status, run.diverged_at, run.steps_done = "diverged", bad, bad[0]
                break
            emit(record(step, value, outputs, idx))
        if needs_closure:
            optimizer.step(BatchClosure(model, loss, x, y, chunk_size))
        else:
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        for hook in after_step:
            hook(step, model, optimizer)
        run.steps_done = step + 1
        if checkpoint is not None and (step + 1) % checkpoint.every == 0:
            bad = watch.check()
            if bad is not None:
                run.status, run.diverged_at, run.steps_done = "diverged", bad, bad[0]
                break
            checkpoint.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                             "scheduler": scheduler.state_dict() if scheduler else None,
                             "batches": batches.state() if batches else None,
                             "history": run.history, "step": step + 1})
    else:
        step = steps
    if run.status == "finished":
        bad = watch.check()
        if bad is not None:
            run.status, run.diverged_at, run.steps_done = "diverged", bad, bad[0]
        else:
            value, outputs = full_batch_gradient(model, loss, data.x_train, data.y_train,
                                                 chunk_size, want_outputs=True)
            if not math.isfinite(float(value)) or float(value) > divergence_factor * (
                    watch.reference or float("inf")):
                run.status, run.diverged_at = "diverged", (steps, float(value))
            else:
                emit(record(steps, value, outputs, None))
    run.seconds = time.perf_counter() - t0
    return run
