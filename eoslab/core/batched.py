"""The engine of :mod:`eoslab.core.sweep`: full-batch GD of many stacked copies of one model.

:func:`fit_batched` trains ``C`` copies whose parameters are stacked along a leading
dimension (``torch.func.stack_module_state``); the loss and gradient of every copy come
from autograd through :func:`eoslab.speed.stacked_mlp.stacked_forward` for a plain MLP, and from
one ``vmap`` of ``grad_and_value(functional_call)`` for any other model; the SGD /
heavy-ball update is written on one ``(C, P)`` tensor of all parameters with a per-copy
step-size vector, masking diverged copies.
:func:`batched_top_eigen` is a batched Lanczos iteration for the sharpness of every copy.
See :mod:`eoslab.core.sweep` for the maths and for the config-level entry point.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.func import functional_call, grad, grad_and_value, jvp, stack_module_state, vmap

from eoslab.core.data import Dataset
from eoslab.core.losses import Loss, get_loss
from eoslab.core.models import has_batchnorm
from eoslab.core.train import Run, _check_data
from eoslab.curvature.objective import iter_chunks
from eoslab.speed.heap import retained_heap
from eoslab.speed.stacked_mlp import stacked_forward

__all__ = ["batched_top_eigen", "fit_batched"]


# ---------------------------------------------------------------- batched curvature
def batched_top_eigen(matvec: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor,
                      active: torch.Tensor | None = None, *, tol: float = 1e-2,
                      max_iter: int = 100, seed: int = 0, mix: float = 1e-2):
    """Top eigenpair of ``C`` symmetric operators at once by Lanczos with full reorthogonalisation.

    ``matvec(V, rows)`` maps vectors ``V`` of shape ``(len(rows), n)`` to
    :math:`(H_r v_r)_{r \\in \\mathrm{rows}}`: one batched product per iteration serves
    every copy still iterating (``rows``, a sorted index array).  Copy ``c`` stops when its top Ritz
    pair has the residual :math:`r = \\beta_j |e_j^\\top s| \\le \\mathrm{tol}\\,
    \\max_i|\\theta_i|`, the rule of :func:`eoslab.curvature.eigen.lanczos_eigsh` (and so of
    :class:`~eoslab.curvature.sharpness.SharpnessProbe`): by Kahan's bound an eigenvalue lies within
    :math:`r` of :math:`\\theta`, and the actual error is about :math:`r^2/\\delta` for a gap
    :math:`\\delta`.  Stopped copies are fed zero vectors.

    Args:
        start: ``(C, n)`` warm-start vectors (previous eigenvectors); zero rows start at random.
        active: ``(C,)`` bool, copies to solve (the others give NaN).
        tol, max_iter: relative residual, Krylov dimension cap.
        seed, mix: the random start's CPU generator, and its weight added to a warm start.

    Returns:
        ``(values (C,) float64 on the CPU, vectors (C, n), products (C,) per copy)``.

    >>> H = torch.stack([torch.diag(torch.tensor([3.0, 1.0, -5.0])), torch.eye(3) * 2])
    >>> vals, _, _ = batched_top_eigen(lambda v, rows: torch.einsum("cij,cj->ci", H[rows], v),
    ...                                torch.zeros(2, 3), tol=1e-10)
    >>> [round(v, 6) for v in vals.tolist()]
    [3.0, 2.0]
    """
    C, n = start.shape
    dtype, device = start.dtype, start.device
    active = torch.ones(C, dtype=torch.bool) if active is None else active.detach().cpu()
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(C, n, generator=gen, dtype=torch.float64).to(device, dtype)
    noise = noise / noise.norm(dim=1, keepdim=True)
    norms = start.norm(dim=1, keepdim=True)
    q = torch.where(norms > 0, start / norms.clamp_min(torch.finfo(dtype).tiny) + mix * noise,
                    noise)
    keep = active.to(device).unsqueeze(1)
    q = torch.where(keep, q / q.norm(dim=1, keepdim=True), torch.zeros_like(q))
    m_max = max(1, min(n, int(max_iter)))
    basis = torch.zeros(C, min(m_max, 16), n, dtype=dtype, device=device)
    alphas, betas = np.zeros((C, m_max)), np.zeros((C, m_max))
    values, coeffs = np.full(C, np.nan), np.zeros((C, m_max))
    products = np.zeros(C, dtype=np.int64)
    done = ~active.numpy().copy()
    eps = float(torch.finfo(dtype).eps)
    for j in range(m_max):
        if j == basis.shape[1]:
            basis = torch.cat([basis, torch.zeros_like(basis)], 1)[:, :m_max]
        basis[:, j] = q
        rows = np.flatnonzero(~done)
        if rows.size == C:
            w = matvec(q, rows)
        else:  # only the copies still iterating pay for a product
            idx = torch.as_tensor(rows, device=device)
            w = torch.zeros_like(q).index_copy_(0, idx, matvec(q.index_select(0, idx), rows))
        products += ~done
        alpha = (q * w).sum(1)
        Q = basis[:, :j + 1]
        for _ in range(2):  # full reorthogonalisation, twice ("twice is enough")
            w = w - torch.bmm(torch.bmm(w.unsqueeze(1), Q.transpose(1, 2)), Q).squeeze(1)
        beta = w.norm(dim=1)
        ab = torch.stack([alpha, beta]).double().cpu().numpy()  # the one sync per iteration
        alphas[:, j] = np.where(done, 0.0, ab[0])
        beta_np = np.where(done, 0.0, ab[1])
        live = np.flatnonzero(~done)
        theta, S = np.linalg.eigh(_tridiagonals(alphas[live, :j + 1], betas[live, :j]))
        scale = np.maximum(np.abs(theta).max(1), eps)
        converged = (beta_np[live] * np.abs(S[:, -1, -1]) <= tol * scale) | (j + 1 == m_max)
        for k in np.flatnonzero(converged):
            c = live[k]
            values[c], coeffs[c, :j + 1], done[c] = theta[k, -1], S[k, :, -1], True
        if done.all():
            break
        betas[:, j] = np.where(done, 0.0, beta_np)
        live = torch.as_tensor(~done, device=device).unsqueeze(1)
        scale_b = torch.as_tensor(betas[:, j], dtype=dtype, device=device).clamp_min(
            torch.finfo(dtype).tiny).unsqueeze(1)
        q = torch.where(live, w / scale_b, torch.zeros_like(w))
    m = j + 1
    S = torch.as_tensor(coeffs[:, :m], dtype=dtype, device=device).unsqueeze(1)
    vectors = torch.bmm(S, basis[:, :m]).squeeze(1)
    return torch.as_tensor(values), vectors, torch.as_tensor(products)


def _tridiagonals(alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """``(C, m, m)`` symmetric tridiagonal matrices with diagonals ``alphas`` ``(C, m)`` and
    off-diagonals ``betas`` ``(C, m - 1)``: every copy's Lanczos matrix, for one stacked
    ``numpy.linalg.eigh`` call instead of one call per copy.
    """
    copies, m = alphas.shape
    out = np.zeros((copies, m, m))
    i = np.arange(m)
    out[:, i, i] = alphas
    out[:, i[:-1], i[1:]] = betas
    out[:, i[1:], i[:-1]] = betas
    return out


# ---------------------------------------------------------------- the batched loop
class _Batch:
    """Pure per-copy functions (loss+grad, outputs, HVP) of stacked parameters."""

    def __init__(self, model: torch.nn.Module, loss: Loss, chunk_size: int | None,
                 input_shape: tuple[int, ...]):
        self.base = copy.deepcopy(model).to("meta")
        self.base.eval()  # no BatchNorm here; eval() is what fit's objective uses
        self.loss, self.chunk_size = loss, chunk_size
        self._per_copy_loss = loss.per_copy
        self._stacked = stacked_forward(self.base, input_shape)

        def chunk_loss(p, b, x, y, w):
            out = functional_call(self.base, (p, b), (x,))
            value = self.loss.per_example_mean(out, y)
            return (value * w if w != 1.0 else value), out

        self._grad = vmap(grad_and_value(chunk_loss, has_aux=True),
                          in_dims=(0, 0, None, None, None))
        self._vmapped = vmap(lambda p, b, x: functional_call(self.base, (p, b), (x,)),
                             in_dims=(0, 0, None))

        def hvp(p, b, v, x, y):
            g = grad(lambda q: self.loss.per_example_mean(
                functional_call(self.base, (q, b), (x,)), y))
            return jvp(g, (p,), (v,))[1]

        self._hvp = vmap(hvp, in_dims=(0, 0, 0, None, None))

    def _forward(self, params, buffers, x):
        """``(C, n, outputs)``: every copy's outputs on the shared inputs ``x``."""
        if self._stacked is not None:
            return self._stacked(params, x)
        return self._vmapped(params, buffers, x)

    def _stacked_grad(self, params, buffers, x, y, w):
        """``_grad`` of a plain MLP: autograd through :func:`stacked_forward`.  The copies'
        losses are independent, so the gradient of their sum is every copy's gradient.
        """
        names = list(params)
        leaves = [params[k].detach().requires_grad_(True) for k in names]
        with torch.enable_grad():
            out = self._stacked(dict(zip(names, leaves)), x)
            value = self._per_copy_loss(out, y)
            value = value * w if w != 1.0 else value
            grads = torch.autograd.grad(value.sum(), leaves)
        return dict(zip(names, grads)), (value.detach(), out.detach())

    def gradient(self, params, buffers, x, y, want_outputs: bool):
        """Per-copy inner mean, its gradient (before the outer transform) and outputs."""
        total, grads, outs = None, None, []
        step = self._grad if self._stacked is None else self._stacked_grad
        for xc, yc, w in iter_chunks(x, y, self.chunk_size):
            g, (value, out) = step(params, buffers, xc, yc, w)
            total = value if total is None else total + value
            grads = g if grads is None else {k: grads[k] + g[k] for k in grads}
            if want_outputs:
                outs.append(out)
        return total, grads, (torch.cat(outs, 1) if want_outputs else None)

    def finish(self, mean, grads):
        """Apply the loss's outer transform (chain rule on the accumulated mean)."""
        outer = self.loss.outer
        if outer is None:
            return mean, grads
        scale = vmap(grad(outer))(mean)
        return outer(mean), {k: g * _bcast(scale, g) for k, g in grads.items()}

    def evaluate(self, params, buffers, x, y, classification: bool):
        """Per-copy loss (and accuracy) as fit's ``_evaluate``: chunk-weighted means."""
        loss_sum, acc_sum = 0.0, 0.0
        for xc, yc, w in iter_chunks(x, y, self.chunk_size):
            out = self._forward(params, buffers, xc)
            loss_sum = loss_sum + w * self._per_copy_loss(out, yc)
            if classification:
                acc_sum = acc_sum + w * _accuracy(out, yc)
        return self.loss.finish(loss_sum), (acc_sum if classification else None)

    def hessian_matvec(self, params, buffers, x, y, outer_terms):
        """``(V, rows) -> (H_r v_r)`` for the full loss, outer transform included."""
        names = list(params)
        shapes = [params[k].shape[1:] for k in names]
        sizes = [math.prod(s) for s in shapes]
        full = (params, buffers, outer_terms)
        cache: dict = {}

        def subset(rows):
            if len(rows) == next(iter(full[0].values())).shape[0]:
                return full
            key = tuple(int(r) for r in rows)
            if key not in cache:
                cache.clear()
                idx = torch.as_tensor(key, device=next(iter(params.values())).device)
                pick = {k: v.index_select(0, idx) for k, v in params.items()}
                bufs = {k: v.index_select(0, idx) for k, v in buffers.items()}
                terms = None if outer_terms is None else tuple(
                    t.index_select(0, idx) for t in outer_terms)
                cache[key] = (pick, bufs, terms)
            return cache[key]

        C = next(iter(params.values())).shape[0]
        single = not self.chunk_size or self.chunk_size >= x.shape[0]
        graph: list = []

        def cached(V):
            """All copies' products from one gradient graph (double backward), built once:
            the copies' losses are independent, so the Hessian of their sum is block
            diagonal and one product of it is every copy's product.
            """
            if not graph:
                leaves = [params[k].detach().requires_grad_(True) for k in names]
                with torch.enable_grad():
                    out = self._forward(dict(zip(names, leaves)), buffers, x)
                    losses = self._per_copy_loss(out, y)
                    grads = torch.autograd.grad(losses.sum(), leaves, create_graph=True)
                graph.extend([leaves, grads])
            leaves, grads = graph
            tangent = [p.reshape(C, *s) for p, s in zip(torch.split(V, sizes, dim=1), shapes)]
            with torch.enable_grad():
                hv = torch.autograd.grad(grads, leaves, grad_outputs=tangent, retain_graph=True)
            return torch.cat([h.reshape(C, -1) for h in hv], 1)

        def matvec(V, rows):
            # the cached graph pays for every copy: cheaper once half of them iterate, and
            # for a plain MLP always (5-6 ms for 16 copies against 12 ms for jvp of the few
            # copies still iterating)
            if single and (self._stacked is not None or 2 * len(rows) >= C):
                idx = torch.as_tensor(rows, device=V.device)
                padded = torch.zeros(C, V.shape[1], dtype=V.dtype, device=V.device)
                total = cached(padded.index_copy_(0, idx, V)).index_select(0, idx)
                outer_r = subset(rows)[2]
                if outer_r is not None:
                    d1, d2, g = outer_r
                    total = d1[:, None] * total + (d2 * (g * V).sum(1))[:, None] * g
                return total
            params, buffers, outer_terms = subset(rows)
            parts = torch.split(V, sizes, dim=1)
            tangent = {k: p.reshape(V.shape[0], *s) for k, p, s in zip(names, parts, shapes)}
            total = None
            for xc, yc, w in iter_chunks(x, y, self.chunk_size):
                hv = self._hvp(params, buffers, tangent, xc, yc)
                flat = torch.cat([hv[k].reshape(V.shape[0], -1) for k in names], 1) * w
                total = flat if total is None else total + flat
            if outer_terms is not None:
                d1, d2, g = outer_terms
                total = d1[:, None] * total + (d2 * (g * V).sum(1))[:, None] * g
            return total

        return matvec


def _bcast(vector: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return vector.reshape(-1, *([1] * (like.dim() - 1)))


def _accuracy(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    labels = target.argmax(-1) if target.dim() == out.dim() - 1 else target
    return (out.argmax(-1) == labels).to(out.dtype).mean(1)


def _norms(tensors: dict) -> torch.Tensor:
    """Per-copy Euclidean norm over all tensors (norm of the per-tensor norms, as fit)."""
    per = [t.reshape(t.shape[0], -1).norm(dim=1) for t in tensors.values()]
    return torch.stack(per, 1).norm(dim=1)


class _Layout:
    """Where each named parameter lies in one ``(C, P)`` tensor of all copies' parameters.

    The update runs on that one tensor: a few elementwise kernels per step instead of a
    few per parameter tensor (0.5 ms per step for the six tensors of an fc net of depth 2,
    16 copies, on this project's CPU, about a tenth of the step).
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


def _due(step: int, record_every: int, sharpness_every: int) -> bool:
    return step % record_every == 0 or bool(sharpness_every and step % sharpness_every == 0)


@retained_heap()  # large activations are reused, not page-faulted in every step
def fit_batched(models: Sequence[torch.nn.Module], data: Dataset, loss: Loss | str, lrs, *,
                steps: int, momentum: float = 0.0, nesterov: bool = False,
                weight_decay: float = 0.0, chunk_size: int | None = None,
                record_every: int = 10, sharpness_every: int = 0, sharpness_tol: float = 1e-2,
                sharpness_max_iter: int = 100, divergence_factor: float = 1e3,
                eval_test: bool = True, callbacks: Sequence[Callable] = (),
                stop: threading.Event | None = None, compile: bool = False) -> list[Run]:
    """Full-batch GD / heavy ball on every model at once: :func:`eoslab.core.train.fit` per copy.

    Args:
        models: ``C`` modules of one architecture (no BatchNorm); trained in place.
        data, loss: shared by all copies.
        lrs: ``C`` step sizes, or a ``(C, steps + 1)`` table whose column ``t`` is the step
            size used at step ``t`` (a schedule; the last column is the final row's).
        steps, chunk_size, record_every, divergence_factor, eval_test: as in ``fit``.
        momentum, nesterov, weight_decay: ``torch.optim.SGD``'s.
        sharpness_every: record ``sharpness`` (and ``hvps``, the products it used, as
            :class:`~eoslab.curvature.sharpness.SharpnessProbe` does) every this many steps (0: never).
        sharpness_tol, sharpness_max_iter: see :func:`batched_top_eigen`.
        callbacks: ``callback(copy_index, row)`` for every recorded row.
        stop: an event that ends the loop (runs still alive get status ``"stopped"``).
        compile: ``torch.compile`` the step (opt-in: see ``benchmarks/README.md``).
    """
    loss = get_loss(loss)
    C = len(models)
    if C == 0:
        raise ValueError("models is empty; a sweep needs at least one copy")
    for i, m in enumerate(models):
        if has_batchnorm(m):
            raise ValueError(f"models[{i}] ({type(m).__name__}) has BatchNorm, which a batched "
                             "sweep does not support; use fit for BatchNorm models")
        _check_data(m, data, loss)
    table = np.asarray(lrs, dtype=np.float64)
    table = np.repeat(table[:, None], steps + 1, 1) if table.ndim == 1 else table
    if table.shape != (C, steps + 1) or not np.all(np.isfinite(table)) or np.any(table < 0):
        raise ValueError(f"lrs must give {C} finite step sizes >= 0 (or a ({C}, {steps + 1}) "
                         f"table), got shape {np.asarray(lrs).shape}")
    params, buffers = stack_module_state(list(models))
    params = {k: v.detach().clone() for k, v in params.items()}
    buffers = {k: v.detach().clone() for k, v in buffers.items()}
    first = next(iter(params.values()))
    dtype, device = first.dtype, first.device
    batch = _Batch(models[0], loss, chunk_size, data.input_shape)
    lr_dev = torch.as_tensor(table.T, dtype=dtype, device=device).contiguous()
    beta = float(momentum)
    layout = _Layout(params)
    theta = layout.flat(params)
    params = layout.views(theta)
    buf = torch.zeros_like(theta) if beta else None
    prev = theta
    alive = torch.ones(C, dtype=torch.bool, device=device)
    ref = torch.ones(C, dtype=torch.float64, device=device)
    died_at = torch.full((C,), -1, dtype=torch.long, device=device)
    died_val = torch.zeros(C, dtype=torch.float64, device=device)
    ids = list(range(C))
    runs = [Run(model=m) for m in models]
    has_test = eval_test and data.x_test.shape[0] > 0
    n_flat = sum(p[0].numel() for p in params.values())
    warm = torch.zeros(C, n_flat, dtype=dtype, device=device) if sharpness_every else None
    update = torch.compile(_update, dynamic=None) if compile else _update
    grad_fn = torch.compile(batch.gradient, dynamic=None) if compile else batch.gradient
    t0 = time.perf_counter()

    def sharpness(step, params, pos, mean, inner):
        outer = None
        if loss.outer is not None:
            d1 = vmap(grad(loss.outer))(mean)
            d2 = vmap(grad(grad(loss.outer)))(mean)
            outer = (d1, d2, torch.cat([g.reshape(len(ids), -1) for g in inner.values()], 1))
        matvec = batch.hessian_matvec(params, buffers, data.x_train, data.y_train, outer)
        active = torch.zeros(len(ids), dtype=torch.bool)
        active[pos] = True
        values, vectors, products = batched_top_eigen(
            matvec, warm, active, tol=sharpness_tol, max_iter=sharpness_max_iter, seed=step)
        warm[active.to(device)] = vectors[active.to(device)]
        return values.tolist(), products.tolist()

    def record(step, params, value, mean, inner, grads, outs):
        live = alive.cpu().tolist()
        pos = [i for i, ok in enumerate(live) if ok]
        cols = {"loss": value, "grad_norm": _norms(grads), "weight_norm": _norms(params)}
        if data.classification:
            cols["acc"] = _accuracy(outs, data.y_train)
        if has_test:
            cols["test_loss"], test_acc = batch.evaluate(params, buffers, data.x_test,
                                                         data.y_test, data.classification)
            if data.classification:
                cols["test_acc"] = test_acc
        stacked = torch.stack([v.double() for v in cols.values()]).cpu()  # one transfer
        host = dict(zip(cols, stacked.tolist()))
        if sharpness_every and step % sharpness_every == 0 and pos:
            host["sharpness"], host["hvps"] = sharpness(step, params, pos, mean, inner)
        order = ["loss", "acc", "grad_norm", "weight_norm", "test_loss", "test_acc", "sharpness",
                 "hvps"]
        elapsed = time.perf_counter() - t0
        for i in pos:
            row = {"step": step, "lr": float(table[ids[i], step])}
            row.update({k: host[k][i] for k in order if k in host})
            row["time"] = elapsed
            runs[ids[i]].history.append(row)
            for callback in callbacks:
                callback(ids[i], row)

    def finalise(keep: list[int]):
        nonlocal theta, params, prev, buf, buffers, alive, ref, died_at, died_val, ids, warm
        nonlocal lr_dev
        at, val = died_at.cpu().tolist(), died_val.cpu().tolist()
        for i, c in enumerate(ids):
            if i not in keep:
                run = runs[c]
                run.status, run.diverged_at = "diverged", (int(at[i]), float(val[i]))
                run.steps_done, run.seconds = int(at[i]), time.perf_counter() - t0
                _write_back(models[c], params, i)
        idx = torch.as_tensor(keep, dtype=torch.long, device=device)
        pick = lambda d: {k: v.index_select(0, idx) for k, v in d.items()}
        theta, prev = theta.index_select(0, idx), prev.index_select(0, idx)
        buf = buf.index_select(0, idx) if buf is not None else None
        params, buffers = layout.views(theta), pick(buffers)
        alive, ref, died_at, died_val = alive[idx], ref[idx], died_at[idx], died_val[idx]
        lr_dev = lr_dev.index_select(1, idx)
        warm = warm.index_select(0, idx) if warm is not None else None
        ids = [ids[i] for i in keep]

    step, stopped = 0, False
    with torch.no_grad():
        for step in range(steps):
            if stop is not None and stop.is_set():
                stopped = True
                break
            recording = _due(step, record_every, sharpness_every)
            mean, inner, outs = grad_fn(params, buffers, data.x_train, data.y_train,
                                        recording and data.classification)
            value, grads = batch.finish(mean, inner)
            if step == 0:
                ref = value.double().abs().clamp_min(1e-12)
            params_t = params
            theta, prev, buf, alive, bad = update(
                theta, prev, buf, layout.flat(grads), value, lr_dev[step], alive, ref,
                divergence_factor, beta, nesterov, weight_decay)
            params = layout.views(theta)
            died_at = torch.where(bad, step, died_at)
            died_val = torch.where(bad, value.double(), died_val)
            if recording:
                record(step, params_t, value, mean, inner, grads, outs)
                live = alive.cpu().tolist()
                if not all(live):
                    finalise([i for i, ok in enumerate(live) if ok])
                    if not ids:
                        break
        if ids:
            live = alive.cpu().tolist()
            finalise([i for i, ok in enumerate(live) if ok])
        if ids and not stopped:
            mean, inner, outs = batch.gradient(params, buffers, data.x_train, data.y_train,
                                               data.classification)
            value, grads = batch.finish(mean, inner)
            v = value.double()
            bad = ~torch.isfinite(v) | (v > divergence_factor * ref)
            died_at = torch.where(bad, steps, died_at)
            died_val = torch.where(bad, v, died_val)
            alive = ~bad
            step = steps
            record(steps, params, value, mean, inner, grads, outs)
            finalise([i for i, ok in enumerate(alive.cpu().tolist()) if ok])
    elapsed = time.perf_counter() - t0
    for i, c in enumerate(ids):
        runs[c].status = "stopped" if stopped else "finished"
        runs[c].steps_done = step if stopped else steps
        runs[c].seconds = elapsed
        _write_back(models[c], params, i)
    return runs


def _write_back(model: torch.nn.Module, params: dict, index: int) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(params[name][index])
