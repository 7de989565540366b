"""The parts of a training step that :func:`eoslab.core.train.fit` is assembled from.

* :func:`full_batch_gradient`: :math:`\\nabla L(\\theta)` accumulated over chunks of
  ``chunk_size`` examples, each chunk's mean loss weighted by its share of the data, so
  the accumulated gradient equals the unchunked one for nets without BatchNorm; losses
  with an outer transform (``sqrt-mse``) by the chain rule on the accumulated mean.
* :class:`BatchClosure`: the same for optimisers that re-evaluate the batch (SAM).
* :class:`Minibatches`: epoch-wise shuffled minibatch indices from a seeded generator.
* :func:`evaluate`: loss and accuracy in eval mode, chunk-weighted.
* :class:`DivergenceWatch`: per-step losses kept on the device, checked at the recording
  cadence for the first one that is non-finite or above ``factor`` times the first loss.
* :func:`check_data`: the model, the data and the loss fit together (dtype, device,
  shapes), with an error that names the mismatch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from eoslab.core.data import Dataset
from eoslab.core.losses import Loss, accuracy
from eoslab.curvature.objective import iter_chunks

__all__ = ["BatchClosure", "DivergenceWatch", "Minibatches", "check_data", "evaluate",
           "full_batch_gradient", "param_norm"]


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


def param_norm(tensors: Iterable[torch.Tensor]) -> float:
    """Euclidean norm of all ``tensors`` together (``None`` entries skipped)."""
    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors))))


class Minibatches:
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
def evaluate(model: nn.Module, loss: Loss, x, y, chunk_size, classification: bool) -> dict:
    """``{"loss"}`` (and ``"acc"``) of ``model`` in eval mode on ``(x, y)``, by chunks."""
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


class DivergenceWatch:
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


def check_data(model: nn.Module, data: Dataset, loss: Loss) -> None:
    """Raise ``ValueError`` naming what does not fit: empty data, dtype, device, shapes."""
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
