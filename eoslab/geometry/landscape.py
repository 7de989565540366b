"""Loss and accuracy on lines and planes in weight space, evaluated in batches of points.

A point with coordinates :math:`c \\in \\mathbb R^K` along directions :math:`d_1..d_K`
(:mod:`eoslab.geometry.directions`) from a base :math:`\\theta_0` is

.. math:: \\theta(c) = \\theta_0 + \\sum_{k=1}^{K} c_k\\, d_k .

:func:`evaluate_points` computes :math:`L(\\theta(c))` (and accuracy) for many points at once:
the parameter sets of a batch of points are stacked and the model is called once through
``torch.func.vmap`` over ``functional_call``, instead of one ``load_state_dict`` and one
forward pass per point as loss-landscape tools do (Li et al. 2018).  The batch size is
bounded by a memory budget (parameters plus the activations of one data chunk per point).
The model comes back unchanged.

Speed layers (:mod:`eoslab.speed`, all off with ``EOSLAB_SPEED=0``, same values to
rounding): the first affine layer is evaluated once per direction instead of once per
point (:mod:`eoslab.speed.linear_head`), ``tanh`` is the fused identity of
:mod:`eoslab.speed.fast_tanh` on the CPU, and freed memory is kept between batches
(:mod:`eoslab.speed.heap`), all through :func:`eoslab.speed.accelerated`.

BatchNorm: points are evaluated in the objective's mode.  With ``train_mode=False`` (the
default) the running statistics are used; with ``train_mode=True`` (batch statistics)
vmap cannot run BatchNorm's in-place buffer update, so the points are evaluated one by one.

Results are plain dicts of lists (JSON-ready); :meth:`eoslab.core.store.RunStore.cached`
keeps them under a hash of everything they depend on (:func:`eoslab.core.store.result_key`).

Example:
    >>> import torch
    >>> from eoslab.curvature.objective import Objective
    >>> model = torch.nn.Linear(1, 1, bias=False)
    >>> x, y = torch.ones(4, 1), torch.zeros(4, 1)
    >>> obj = Objective(model, "mse", x, y)
    >>> out = slice_1d(obj, {"weight": torch.zeros(1, 1)}, {"weight": torch.ones(1, 1)},
    ...                [0.0, 1.0, 2.0])
    >>> out["loss"]   # L(w) = w^2 / 2
    [0.0, 0.5, 2.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from eoslab import speed
from eoslab.core.losses import accuracy
from eoslab.core.models import has_batchnorm
from eoslab.curvature.objective import iter_chunks
from eoslab.geometry.directions import Params, check_compatible

__all__ = [
    "evaluate_points",
    "interpolate",
    "points_per_batch",
    "slice_1d",
    "slice_2d",
]


def _as_grid(values, name: str) -> torch.Tensor:
    grid = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if grid.numel() == 0:
        raise ValueError(f"{name} is empty; give at least one grid value")
    if not torch.isfinite(grid).all():
        raise ValueError(f"{name} has non-finite values; grid values must be finite")
    return grid


def _classify(y: torch.Tensor) -> bool:
    return (y.dim() == 1 and not y.is_floating_point()) or (y.dim() == 2 and y.shape[1] > 1)


def _activation_numel(model: nn.Module, objective, params: Params, x: torch.Tensor) -> int:
    """Entries of every leaf module's output for one forward pass on ``x`` (memory estimate)."""
    total = [0]

    def hook(_module, _inputs, output):
        if torch.is_tensor(output):
            total[0] += output.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            objective.forward(params, x)
    finally:
        for h in handles:
            h.remove()
    return max(total[0], 1)


def points_per_batch(objective, params: Params, x: torch.Tensor, memory_mb: float | None = None
                     ) -> int:
    """How many points fit in ``memory_mb`` (default: 64 MiB on CPU, 1/4 of free CUDA memory).

    On the CPU the evaluation is compute-bound and small batches stay in cache; on a GPU
    large batches amortise the kernel launches.

    Each point costs its parameters plus the activations of one data chunk, times 2 for
    temporaries.
    """
    first = next(iter(params.values()))
    if memory_mb is None:
        if first.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(first.device)
            memory_mb = free / 4 / 2**20
        else:
            memory_mb = 64.0
    if not memory_mb > 0:
        raise ValueError(f"memory_mb={memory_mb!r} is not allowed; use a number > 0")
    chunk = x[: objective.chunk_size or x.shape[0]]
    n_params = sum(v.numel() for v in params.values())
    per_point = 2 * first.element_size() * (n_params + _activation_numel(
        objective.model, objective, params, chunk))
    return max(1, int(memory_mb * 2**20 // per_point))


def _stack_directions(base: Params, directions: Sequence[Params]) -> dict[str, torch.Tensor]:
    for i, d in enumerate(directions):
        check_compatible(base, d, ("base", f"direction {i}"))
    return {k: torch.stack([d[k].to(base[k]) for d in directions]) for k in base}


@torch.no_grad()
def evaluate_points(objective, base: Params, directions: Sequence[Params], coords, *,
                    x: torch.Tensor | None = None, y: torch.Tensor | None = None,
                    batch_points: int | None = None, memory_mb: float | None = None,
                    method: str = "vmap") -> dict[str, torch.Tensor]:
    """Loss (and accuracy) at :math:`\\theta_0 + \\sum_k c_{pk} d_k` for every row ``c_p``.

    Args:
        objective: an :class:`~eoslab.curvature.objective.Objective` (model, loss, data, BN mode).
        base: :math:`\\theta_0`, keyed like ``objective.param_names``.
        directions: ``K`` directions.
        coords: ``(P, K)`` coordinates (a ``(P,)`` array when ``K = 1``).
        x: inputs to evaluate on (default: the objective's, usually the training set).
        y: targets of ``x`` (default: the objective's).
        batch_points: points per vmapped batch (default: from ``memory_mb``).
        memory_mb: memory budget of a batch (see :func:`points_per_batch`).
        method: ``"vmap"`` (batched) or ``"loop"`` (one point at a time, the reference).

    Returns:
        ``{"loss": (P,)}`` plus ``"acc"`` for classification targets, float64 on the CPU.
    """
    if method not in ("vmap", "loop"):
        raise ValueError(f"method={method!r} is not allowed; allowed: vmap, loop")
    x = objective.x if x is None else x
    y = objective.y if y is None else y
    missing = set(objective.param_names) ^ set(base)
    if missing:
        raise ValueError(f"base parameters do not match the objective's: {sorted(missing)}")
    coords = torch.as_tensor(coords, dtype=torch.float64)
    coords = coords.reshape(-1, 1) if coords.dim() == 1 else coords
    if coords.shape[0] == 0:
        raise ValueError("coords is empty; give at least one point")
    if coords.dim() != 2 or coords.shape[1] != len(directions):
        raise ValueError(f"coords of shape {tuple(coords.shape)} do not match "
                         f"{len(directions)} directions; use shape (points, directions)")
    stacked = _stack_directions(base, directions)
    classify = _classify(y)
    if objective.train_mode and has_batchnorm(objective.model):
        method = "loop"
    if batch_points is None:
        batch_points = 1 if method == "loop" else points_per_batch(objective, base, x, memory_mb)
    elif isinstance(batch_points, bool) or not isinstance(batch_points, int) or batch_points < 1:
        raise ValueError(f"batch_points={batch_points!r} is not allowed; use an integer >= 1")
    split = speed.split_linear_head(objective) if method == "vmap" else None
    several_chunks = bool(objective.chunk_size) and objective.chunk_size < x.shape[0]
    if several_chunks and batch_points <= len(directions) + 1:
        split = None  # K + 1 head responses per batch would cost more than B head passes
    with speed.accelerated(objective.model):
        losses, accs = _evaluate_batches(objective, base, directions, stacked, coords, x, y,
                                         batch_points, method, split)
    result = {"loss": torch.cat(losses)}
    if classify:
        result["acc"] = torch.cat(accs)
    return result


def _evaluate_batches(objective, base, directions, stacked, coords, x, y, batch_points,
                      method, split):
    """Per-batch loss and accuracy sums (see :func:`evaluate_points`)."""
    chunks = list(iter_chunks(x, y, objective.chunk_size))
    # one chunk: the head's responses are computed once; several: once per batch and chunk
    # (keeping every chunk's would hold K + 1 copies of the first layer's activations)
    kept = (split.responses(base, directions, chunks[0][0])
            if split is not None and len(chunks) == 1 else None)
    loss_fn, classify = objective.loss, _classify(y)
    losses, accs = [], []
    for start in range(0, coords.shape[0], batch_points):
        c = coords[start:start + batch_points]
        batch = {k: base[k] + torch.tensordot(c.to(d), d, dims=1) for k, d in stacked.items()
                 if split is None or k not in split.head_names}
        loss_sum = torch.zeros(c.shape[0], dtype=torch.float64, device=c.device)
        acc_sum = torch.zeros_like(loss_sum)
        for xc, yc, weight in chunks:
            if method == "loop":
                out = torch.stack([objective.forward({k: v[i] for k, v in batch.items()}, xc)
                                   for i in range(c.shape[0])])
                per = torch.stack([loss_fn.per_example_mean(o, yc) for o in out])
            else:
                responses = None if split is None else (
                    kept if kept is not None else split.responses(base, directions, xc))
                out = _vmapped_outputs(objective, batch, c, xc, split, responses)
                per = loss_fn.per_copy(out, yc)
            loss_sum += weight * per.double().cpu()
            if classify:
                acc_sum += weight * torch.stack([accuracy(o, yc) for o in out]).double().cpu()
        losses.append(loss_fn.finish(loss_sum))
        accs.append(acc_sum)
    return losses, accs


def _vmapped_outputs(objective, batch, c, xc, split, responses) -> torch.Tensor:
    """Outputs ``(points, examples, ...)`` of a batch of points on one data chunk.

    With a linear head (:mod:`eoslab.speed.linear_head`) only the tail runs per point, on the
    combined responses; ``tanh`` runs as :class:`~eoslab.speed.fast_tanh.FastTanh` on the CPU
    (both speed layers, off with ``EOSLAB_SPEED=0``).
    """
    with speed.fast_tanh_mode():
        if split is None:
            return torch.func.vmap(lambda p: objective.forward(p, xc))(batch)
        return torch.func.vmap(lambda p, z: objective.forward(p, z, split.tail))(
            batch, split.combine(responses, c))


def _evaluate_splits(objective, base, directions, coords, test, **options) -> dict:
    out = {k: v for k, v in evaluate_points(objective, base, directions, coords,
                                            **options).items()}
    if test is not None:
        x_test, y_test = test
        if x_test.shape[0] > 0:
            extra = evaluate_points(objective, base, directions, coords, x=x_test, y=y_test,
                                    **options)
            out.update({f"test_{k}": v for k, v in extra.items()})
    return out


def slice_1d(objective, base: Params, direction: Params, alphas, *,
             test: tuple[torch.Tensor, torch.Tensor] | None = None, **options) -> dict:
    """Metrics along the line :math:`\\theta_0 + \\alpha d` at each ``alpha``.

    ``test=(x_test, y_test)`` adds ``test_loss`` / ``test_acc``; ``options`` go to
    :func:`evaluate_points`.  Returns ``{"alpha": [...], "loss": [...], ...}``.
    """
    alphas = _as_grid(alphas, "alphas")
    out = _evaluate_splits(objective, base, [direction], alphas.reshape(-1, 1), test, **options)
    return {"alpha": alphas.tolist(), **{k: v.tolist() for k, v in out.items()}}


def interpolate(objective, theta_a: Params, theta_b: Params, ts=None, **options) -> dict:
    """Metrics on :math:`(1-t)\\theta_a + t\\theta_b` (default 21 values of ``t`` in [0, 1])."""
    check_compatible(theta_a, theta_b, ("theta_a", "theta_b"))
    ts = torch.linspace(0, 1, 21) if ts is None else ts
    direction = {k: theta_b[k] - theta_a[k] for k in theta_a}
    out = slice_1d(objective, theta_a, direction, ts, **options)
    out["t"] = out.pop("alpha")
    return out


def slice_2d(objective, base: Params, d1: Params, d2: Params, xs, ys, *,
             test: tuple[torch.Tensor, torch.Tensor] | None = None, **options) -> dict:
    """Metrics on the grid :math:`\\theta_0 + x_i d_1 + y_j d_2`.

    Returns ``{"x": xs, "y": ys, "loss": [[...]], ...}`` with ``loss[i][j]`` at
    ``(xs[i], ys[j])``.
    """
    xs, ys = _as_grid(xs, "xs"), _as_grid(ys, "ys")
    gx, gy = torch.meshgrid(xs, ys, indexing="ij")
    coords = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    out = _evaluate_splits(objective, base, [d1, d2], coords, test, **options)
    shape = (xs.numel(), ys.numel())
    return {"x": xs.tolist(), "y": ys.tolist(),
            **{k: v.reshape(shape).tolist() for k, v in out.items()}}
