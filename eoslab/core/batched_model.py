"""``C`` stacked copies of one model as pure functions, for the batched sweep.

:class:`BatchedModel` evaluates every copy's loss, gradient, outputs and Hessian-vector
products on shared data from parameters stacked along a leading copy dimension
(``torch.func.stack_module_state``).  A plain MLP goes through the feature-major stacked
forward of :mod:`eoslab.speed.stacked_mlp` (consulted through the speed switch,
:func:`eoslab.speed.stacked_forward`) with autograd for the gradient of the sum of the
copies' independent losses; any other model, or every model with ``EOSLAB_SPEED=0``,
through ``torch.func`` transforms of ``functional_call`` batched by ``vmap``.  The
products :math:`H_c v_c` (Pearlmutter 1994) come from one double-backward graph of all
copies when the data is one chunk (the Hessian of the sum of independent losses is block
diagonal), else from ``vmap`` over copies of ``jvp`` of ``grad``.
"""

from __future__ import annotations

import copy
import math

import torch
from torch.func import functional_call, grad, grad_and_value, jvp, vmap

from eoslab import speed
from eoslab.core.losses import Loss
from eoslab.curvature.objective import iter_chunks

__all__ = ["BatchedModel", "batched_accuracy"]


class BatchedModel:
    """Pure per-copy functions of stacked parameters: loss and gradient, outputs, HVPs.

    ``params`` / ``buffers`` arguments map ``model``'s names to tensors stacked along a
    leading copy dimension; ``x``, ``y`` are shared by all copies.
    """

    def __init__(self, model: torch.nn.Module, loss: Loss, chunk_size: int | None,
                 input_shape: tuple[int, ...]):
        self.base = copy.deepcopy(model).to("meta")
        self.base.eval()  # no BatchNorm here; eval() is what fit's objective uses
        self.loss, self.chunk_size = loss, chunk_size
        self._per_copy_loss = loss.per_copy
        self._stacked = speed.stacked_forward(self.base, input_shape)

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
        """``_grad`` of a plain MLP: autograd through the stacked forward.

        The copies' losses are independent, so the gradient of their sum is every copy's
        gradient.
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
                acc_sum = acc_sum + w * batched_accuracy(out, yc)
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
            """All copies' products from one gradient graph (double backward), built once.

            The copies' losses are independent, so the Hessian of their sum is block
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
            # the cached graph pays for every copy: cheaper than jvp of the copies still
            # iterating once half of them iterate, and for a plain MLP always
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


def batched_accuracy(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-copy accuracy of outputs ``(C, n, classes)`` against labels or one-hot targets."""
    labels = target.argmax(-1) if target.dim() == out.dim() - 1 else target
    return (out.argmax(-1) == labels).to(out.dtype).mean(1)
