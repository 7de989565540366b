"""The engine of :mod:`eoslab.core.sweep`: full-batch GD of many stacked copies of one model.

:func:`fit_batched` trains ``C`` copies whose parameters are stacked along a leading
dimension (``torch.func.stack_module_state``); the loss and gradient of every copy come
from autograd through a feature-major stacked forward for a plain MLP
(:func:`eoslab.speed.stacked_forward`, a speed layer) and from one ``vmap`` of
``grad_and_value(functional_call)`` for any other model, or for every model with the
speed switch off (``EOSLAB_SPEED=0``); the SGD / heavy-ball update is written on one
``(C, P)`` tensor of all parameters with a per-copy step-size vector, masking diverged
copies.  The sharpness of every copy comes from the batched Lanczos iteration of
:func:`eoslab.curvature.eigen_batched.batched_top_eigen`.  See :mod:`eoslab.core.sweep`
for the maths and for the config-level entry point.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.func import grad, stack_module_state, vmap

from eoslab import speed
from eoslab.core.batched_model import BatchedModel, batched_accuracy
from eoslab.core.data import Dataset
from eoslab.core.losses import Loss, get_loss
from eoslab.core.models import has_batchnorm
from eoslab.core.steps import check_data
from eoslab.core.train import Run
from eoslab.curvature.eigen_batched import batched_top_eigen

__all__ = ["batched_top_eigen", "fit_batched"]


def _norms(tensors: dict) -> torch.Tensor:
    """Per-copy Euclidean norm over all tensors (norm of the per-tensor norms, as fit)."""
    per = [t.reshape(t.shape[0], -1).norm(dim=1) for t in tensors.values()]
    return torch.stack(per, 1).norm(dim=1)


class _Layout:
    """Where each named parameter lies in one ``(C, P)`` tensor of all copies' parameters.

    The update runs on that one tensor: a few elementwise kernels per step instead of a
    few per parameter tensor.
    """

    def __init__(self, params: dict):
        self.names = list(params)
        self.shapes = [params[k].shape[1:] for k in self.names]
        self.sizes = [math.prod(s) for s in self.shapes]

    def flat(self, tensors: dict) -> torch.Tensor:
        """``(C, P)``: the tensors' copies side by side, in parameter order."""
        return torch.cat([tensors[k].reshape(tensors[k].shape[0], -1) for k in self.names], 1)

    def views(self, flat: torch.Tensor) -> dict:
        """The named parameters as views into ``flat``."""
        parts = torch.split(flat, self.sizes, dim=1)
        return {k: p.view(flat.shape[0], *s) for k, p, s in zip(self.names, parts, self.shapes)}


def _update(theta, prev, buf, grad, loss, lr_t, alive, ref, factor, beta, nesterov, decay):
    """One masked SGD / heavy-ball step of every copy, with the divergence test of fit.

    ``theta``, ``prev`` (the parameters one step earlier), ``buf`` (momentum) and
    ``grad`` are ``(C, P)``.  Copies whose loss at :math:`\\theta_t` is non-finite or above
    ``factor`` times their first loss stop here; they keep their last parameters with a
    finite loss.
    """
    value = loss.double()
    bad = alive & (~torch.isfinite(value) | (value > factor * ref))
    alive = alive & ~bad
    d = grad if not decay else grad + decay * theta
    if beta:
        new_buf = beta * buf + d
        d = d + beta * new_buf if nesterov else new_buf
    new = theta - lr_t.unsqueeze(1) * d
    live = alive.unsqueeze(1)
    new = torch.where(live, new, torch.where(bad.unsqueeze(1), prev, theta))
    if beta:
        buf = torch.where(live, new_buf, buf)
    return new, theta, buf, alive, bad


class _Sweep:
    """The state of one :func:`fit_batched` and its named steps.

    The copies still in the batch (``ids``) have their parameters in one ``(C', P)``
    tensor ``theta`` (``params`` are views into it); :meth:`step` takes one GD step of all
    of them, :meth:`record` writes their history rows, :meth:`sharpness` estimates their
    top Hessian eigenvalues, :meth:`drop_diverged` takes diverged copies out of the batch,
    :meth:`finish` records the final rows and :meth:`close` ends the runs.
    """

    def __init__(self, models, data: Dataset, loss: Loss, table: np.ndarray, opts: dict):
        self.models, self.data, self.loss, self.table, self.opts = models, data, loss, table, opts
        params, buffers = stack_module_state(list(models))
        params = {k: v.detach().clone() for k, v in params.items()}
        self.buffers = {k: v.detach().clone() for k, v in buffers.items()}
        C, first = len(models), next(iter(params.values()))
        self.device = first.device
        self.batch = BatchedModel(models[0], loss, opts["chunk_size"], data.input_shape)
        self.lr_dev = torch.as_tensor(table.T, dtype=first.dtype, device=self.device).contiguous()
        self.layout = _Layout(params)
        self.theta = self.prev = self.layout.flat(params)
        self.params = self.layout.views(self.theta)
        self.buf = torch.zeros_like(self.theta) if opts["momentum"] else None
        self.alive = torch.ones(C, dtype=torch.bool, device=self.device)
        self.ref = torch.ones(C, dtype=torch.float64, device=self.device)
        self.died_at = torch.full((C,), -1, dtype=torch.long, device=self.device)
        self.died_val = torch.zeros(C, dtype=torch.float64, device=self.device)
        self.ids, self.runs = list(range(C)), [Run(model=m) for m in models]
        self.has_test = opts["eval_test"] and data.x_test.shape[0] > 0
        self.warm = torch.zeros_like(self.theta) if opts["sharpness_every"] else None
        compile = opts["compile"]
        self.update = torch.compile(_update, dynamic=None) if compile else _update
        self.gradient = (torch.compile(self.batch.gradient, dynamic=None) if compile
                         else self.batch.gradient)
        self.t0 = time.perf_counter()

    def due(self, step: int) -> bool:
        every = self.opts["sharpness_every"]
        return step % self.opts["record_every"] == 0 or bool(every and step % every == 0)

    def step(self, step: int) -> bool:
        """Step ``step`` of every copy in the batch; ``False`` once no copy is left."""
        recording, data, o = self.due(step), self.data, self.opts
        mean, inner, outs = self.gradient(self.params, self.buffers, data.x_train,
                                          data.y_train, recording and data.classification)
        value, grads = self.batch.finish(mean, inner)
        if step == 0:
            self.ref = value.double().abs().clamp_min(1e-12)
        params_t = self.params
        self.theta, self.prev, self.buf, self.alive, bad = self.update(
            self.theta, self.prev, self.buf, self.layout.flat(grads), value, self.lr_dev[step],
            self.alive, self.ref, o["divergence_factor"], o["momentum"], o["nesterov"],
            o["weight_decay"])
        self.params = self.layout.views(self.theta)
        self._mark(bad, step, value)
        if recording:
            self.record(step, params_t, value, mean, inner, grads, outs)
            self.drop_diverged()
        return bool(self.ids)

    def _mark(self, bad: torch.Tensor, step: int, value: torch.Tensor) -> None:
        self.died_at = torch.where(bad, step, self.died_at)
        self.died_val = torch.where(bad, value.double(), self.died_val)

    def record(self, step, params, value, mean, inner, grads, outs) -> None:
        """The history rows at :math:`\\theta_t` of the copies still alive (one transfer)."""
        data, batch = self.data, self.batch
        pos = [i for i, ok in enumerate(self.alive.cpu().tolist()) if ok]
        cols = {"loss": value, "grad_norm": _norms(grads), "weight_norm": _norms(params)}
        if data.classification:
            cols["acc"] = batched_accuracy(outs, data.y_train)
        if self.has_test:
            cols["test_loss"], test_acc = batch.evaluate(params, self.buffers, data.x_test,
                                                         data.y_test, data.classification)
            if data.classification:
                cols["test_acc"] = test_acc
        stacked = torch.stack([v.double() for v in cols.values()]).cpu()
        host = dict(zip(cols, stacked.tolist()))
        every = self.opts["sharpness_every"]
        if every and step % every == 0 and pos:
            host["sharpness"], host["hvps"] = self.sharpness(step, params, pos, mean, inner)
        elapsed = time.perf_counter() - self.t0
        for i in pos:
            row = {"step": step, "lr": float(self.table[self.ids[i], step])}
            row.update({k: host[k][i] for k in _ORDER if k in host})
            row["time"] = elapsed
            self.runs[self.ids[i]].history.append(row)
            for callback in self.opts["callbacks"]:
                callback(self.ids[i], row)

    def sharpness(self, step, params, pos, mean, inner) -> tuple[list, list]:
        """Top Hessian eigenvalue (and products used) of the copies at ``pos``, warm-started."""
        outer, loss, n = None, self.loss, len(self.ids)
        if loss.outer is not None:
            d1, d2 = vmap(grad(loss.outer))(mean), vmap(grad(grad(loss.outer)))(mean)
            outer = (d1, d2, torch.cat([g.reshape(n, -1) for g in inner.values()], 1))
        matvec = self.batch.hessian_matvec(params, self.buffers, self.data.x_train,
                                           self.data.y_train, outer)
        active = torch.zeros(n, dtype=torch.bool)
        active[pos] = True
        values, vectors, products = batched_top_eigen(
            matvec, self.warm, active, tol=self.opts["sharpness_tol"],
            max_iter=self.opts["sharpness_max_iter"], seed=step)
        keep = active.to(self.device)
        self.warm[keep] = vectors[keep]
        return values.tolist(), products.tolist()

    def drop_diverged(self) -> None:
        """End the runs of the copies that diverged and take them out of the batch."""
        live = self.alive.cpu().tolist()
        if all(live):
            return
        at, val = self.died_at.cpu().tolist(), self.died_val.cpu().tolist()
        for i, c in enumerate(self.ids):
            if not live[i]:
                run = self.runs[c]
                run.status, run.diverged_at = "diverged", (int(at[i]), float(val[i]))
                run.steps_done, run.seconds = int(at[i]), time.perf_counter() - self.t0
                _write_back(self.models[c], self.params, i)
        keep = [i for i, ok in enumerate(live) if ok]
        idx = torch.as_tensor(keep, dtype=torch.long, device=self.device)
        self.theta, self.prev = self.theta.index_select(0, idx), self.prev.index_select(0, idx)
        self.buf = self.buf.index_select(0, idx) if self.buf is not None else None
        self.params = self.layout.views(self.theta)
        self.buffers = {k: v.index_select(0, idx) for k, v in self.buffers.items()}
        for name in ("alive", "ref", "died_at", "died_val"):
            setattr(self, name, getattr(self, name)[idx])
        self.lr_dev = self.lr_dev.index_select(1, idx)
        self.warm = self.warm.index_select(0, idx) if self.warm is not None else None
        self.ids = [self.ids[i] for i in keep]

    def finish(self, steps: int) -> None:
        """The final rows at :math:`\\theta_T`, with the divergence test of that loss."""
        data = self.data
        mean, inner, outs = self.batch.gradient(self.params, self.buffers, data.x_train,
                                                data.y_train, data.classification)
        value, grads = self.batch.finish(mean, inner)
        v = value.double()
        bad = ~torch.isfinite(v) | (v > self.opts["divergence_factor"] * self.ref)
        self._mark(bad, steps, value)
        self.alive = ~bad
        self.record(steps, self.params, value, mean, inner, grads, outs)
        self.drop_diverged()

    def close(self, status: str, steps_done: int) -> list[Run]:
        """End the runs of the copies still in the batch and write their parameters back."""
        elapsed = time.perf_counter() - self.t0
        for i, c in enumerate(self.ids):
            run = self.runs[c]
            run.status, run.steps_done, run.seconds = status, steps_done, elapsed
            _write_back(self.models[c], self.params, i)
        return self.runs


_ORDER = ("loss", "acc", "grad_norm", "weight_norm", "test_loss", "test_acc", "sharpness", "hvps")


def _check_sweep(models, data: Dataset, loss: Loss, lrs, steps: int) -> np.ndarray:
    """The ``(C, steps + 1)`` step-size table, after checking the copies and the data."""
    C = len(models)
    if C == 0:
        raise ValueError("models is empty; a sweep needs at least one copy")
    for i, m in enumerate(models):
        if has_batchnorm(m):
            raise ValueError(f"models[{i}] ({type(m).__name__}) has BatchNorm, which a batched "
                             "sweep does not support; use fit for BatchNorm models")
        check_data(m, data, loss)
    table = np.asarray(lrs, dtype=np.float64)
    table = np.repeat(table[:, None], steps + 1, 1) if table.ndim == 1 else table
    if table.shape != (C, steps + 1) or not np.all(np.isfinite(table)) or np.any(table < 0):
        raise ValueError(f"lrs must give {C} finite step sizes >= 0 (or a ({C}, {steps + 1}) "
                         f"table), got shape {np.asarray(lrs).shape}")
    return table


def fit_batched(models: Sequence[torch.nn.Module], data: Dataset, loss: Loss | str, lrs, *,
                steps: int, momentum: float = 0.0, nesterov: bool = False,
                weight_decay: float = 0.0, chunk_size: int | None = None,
                record_every: int = 10, sharpness_every: int = 0, sharpness_tol: float = 1e-2,
                sharpness_max_iter: int = 100, divergence_factor: float = 1e3,
                eval_test: bool = True, callbacks: Sequence[Callable] = (),
                stop: threading.Event | None = None, compile: bool = False) -> list[Run]:
    """Full-batch GD / heavy ball on every model at once: :func:`eoslab.core.train.fit` per copy.

    The CPU speed layers (:mod:`eoslab.speed`) apply for the duration of the call unless
    ``EOSLAB_SPEED=0``; the models come back with their own modules.

    Args:
        models: ``C`` modules of one architecture (no BatchNorm); trained in place.
        data: the dataset, shared by all copies.
        loss: a :class:`~eoslab.core.losses.Loss` or its name, shared by all copies.
        lrs: ``C`` step sizes, or a ``(C, steps + 1)`` table whose column ``t`` is the step
            size used at step ``t`` (a schedule; the last column is the final row's).
        steps: optimiser steps, as in ``fit``.
        momentum: ``torch.optim.SGD``'s heavy-ball coefficient.
        nesterov: ``torch.optim.SGD``'s Nesterov flag.
        weight_decay: ``torch.optim.SGD``'s L2 coefficient.
        chunk_size: examples per forward pass, as in ``fit``.
        record_every: history cadence in steps, as in ``fit``.
        sharpness_every: record ``sharpness`` (and ``hvps``, the products it used, as
            :class:`~eoslab.curvature.sharpness.SharpnessProbe` does) every this many steps
            (0: never).
        sharpness_tol: relative residual of :func:`batched_top_eigen`.
        sharpness_max_iter: Krylov dimension cap of :func:`batched_top_eigen`.
        divergence_factor: as in ``fit``.
        eval_test: as in ``fit``.
        callbacks: ``callback(copy_index, row)`` for every recorded row.
        stop: an event that ends the loop (runs still alive get status ``"stopped"``).
        compile: ``torch.compile`` the step (opt-in: see ``benchmarks/README.md``).
    """
    loss = get_loss(loss)
    table = _check_sweep(models, data, loss, lrs, steps)
    opts = {"momentum": float(momentum), "nesterov": nesterov, "weight_decay": weight_decay,
            "chunk_size": chunk_size, "record_every": record_every,
            "sharpness_every": sharpness_every, "sharpness_tol": sharpness_tol,
            "sharpness_max_iter": sharpness_max_iter, "divergence_factor": divergence_factor,
            "eval_test": eval_test, "callbacks": callbacks, "compile": compile}
    with speed.accelerated(*models), torch.no_grad():
        sweep = _Sweep(models, data, loss, table, opts)
        step, stopped = 0, False
        for step in range(steps):
            if stop is not None and stop.is_set():
                stopped = True
                break
            if not sweep.step(step):
                break
        if sweep.ids:
            sweep.drop_diverged()
        if sweep.ids and not stopped:
            sweep.finish(steps)
        return sweep.close("stopped" if stopped else "finished", step if stopped else steps)


def _write_back(model: torch.nn.Module, params: dict, index: int) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(params[name][index])
