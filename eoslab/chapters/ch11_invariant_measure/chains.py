"""Many SGD chains at once: the *law* of the iterates, and whether it has stopped moving.

Zhang, Li, Sra, Jadbabaie (ICML 2022, arXiv 2110.06256) argue about the distribution of
:math:`\\theta_t` over the randomness of SGD, not about one run.  Here ``chains``
independent copies of the chapter's net (initialisation seed :math:`k`, their own
minibatches, drawn with replacement) train side by side (one vectorised step,
``torch.func.vmap``), and two scalar observables are recorded for every chain: the
full-batch training loss :math:`L` and the weight norm :math:`\\lVert\\theta\\rVert`.
The chains are split into two halves :math:`A` and :math:`B`, and for two times
:math:`t_1 < t_2`

.. math::

    D(t_1, t_2) = \\tfrac12\\big[W_1(A_{t_1}, B_{t_2}) + W_1(B_{t_1}, A_{t_2})\\big], \\qquad
    F(t_1, t_2) = \\tfrac12\\big[W_1(A_{t_1}, B_{t_1}) + W_1(A_{t_2}, B_{t_2})\\big],

the law's drift and its noise floor: :math:`F` compares independent chains at the *same*
time, so it is what :math:`D` would be if the law had not moved (independent halves, so
no chain is compared with itself).  The law has settled when :math:`D/F \\approx 1`.

That alone does not tell SGD from GD: GD from random initialisations also has a law, and
it settles too, because every chain converges.  What separates them is whether a chain
keeps moving *within* the law.  The mixing ratio

.. math::

    M(t_1, t_2) = \\frac{\\operatorname{mean}_i |x_i(t_2) - x_i(t_1)|}
                       {\\operatorname{mean}_{i \\ne j} |x_i(t_2) - x_j(t_2)|}

is near 1 when each chain has travelled as far as two independent draws from the law lie
apart, and near 0 when the chains have stopped.  The chapter's claim is
:math:`D/F \\approx 1` with :math:`M` well above 0 under SGD, and :math:`M \\approx 0` under
full-batch GD (the control).

Example:
    >>> a, b = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0, 2.0])
    >>> s = law_drift(a, b)        # chains swapped places: same law, but they moved
    >>> round(s["ratio"], 3), round(s["mixing"], 3)
    (1.0, 0.6)
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import stats
from torch.func import functional_call, grad, stack_module_state, vmap

from eoslab.core.losses import get_loss

if TYPE_CHECKING:  # the registry imports meta; importing it here first would be circular
    from eoslab.chapters.ch11_invariant_measure.meta import InvariantMeasurePreset

__all__ = ["law_drift", "law_over_time", "run_chains"]

OBSERVABLES = ("loss", "norm")


def law_drift(before, after) -> dict:
    """Drift ``D``, floor ``F``, ``ratio`` = D/F and mixing ``M`` of one observable.

    ``before``, ``after``: the values of the same chains at :math:`t_1` and :math:`t_2`
    (the first half of the chains is :math:`A`, the second :math:`B`; see the module docs).

    Raises:
        ValueError: fewer than 4 chains, or arrays of different shapes.
    """
    a, b = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size < 4:
        raise ValueError(f"values of shapes {a.shape} and {b.shape}: use two vectors of the "
                         "same length, 4 chains or more")
    h = a.size // 2
    w1 = stats.wasserstein_distance
    drift = 0.5 * (w1(a[:h], b[h:]) + w1(a[h:], b[:h]))
    floor = 0.5 * (w1(a[:h], a[h:]) + w1(b[:h], b[h:]))
    spread = np.abs(b[:, None] - b[None, :]).sum() / (b.size * (b.size - 1))
    move = float(np.mean(np.abs(b - a)))
    return {"drift": float(drift), "floor": float(floor),
            "ratio": float(drift / floor) if floor > 0 else math.inf,
            "mixing": float(move / spread) if spread > 0 else math.inf, "move": move}


def law_over_time(record: dict, gap: int) -> list[dict]:
    """:func:`law_drift` of every observable between recorded steps ``gap`` records apart.

    Rows: ``step`` (:math:`t_2`), ``observable``, and the fields of :func:`law_drift`.
    """
    steps = record["steps"]
    rows = []
    for j in range(gap, len(steps)):
        for name in OBSERVABLES:
            values = record[name]
            rows.append({"step": steps[j], "observable": name,
                         **law_drift(values[:, j - gap], values[:, j])})
    return rows


def run_chains(preset: InvariantMeasurePreset, settings: dict, *, chains: int = 12,
               steps: int | None = None, record_every: int = 50) -> dict:
    """Train ``chains`` copies at ``settings`` (``lr``, ``batch_size``, ``weight_decay``).

    A batch size of at least the number of examples is full-batch GD (then the chains
    differ only by their initialisation).  Returns ``steps`` (recorded steps), ``loss`` and
    ``norm`` (arrays ``chains x records``: full-batch loss without the decay term, and
    :math:`\\lVert\\theta\\rVert`), and ``diverged`` (whether any value was non-finite).
    """
    if isinstance(chains, bool) or not isinstance(chains, int) or chains < 4:
        raise ValueError(f"chains={chains!r} is not allowed; use an integer >= 4")
    lr, wd = float(settings["lr"]), float(settings["weight_decay"])
    steps = preset.steps if steps is None else steps
    data = preset.net.load_data()
    x, y, n = data.x_train, data.y_train, data.n_train
    batch = min(int(settings["batch_size"]), n)
    models = [preset.net.build_model(data, seed=preset.net.model_seed + k)
              for k in range(chains)]
    params, _ = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    loss_fn = get_loss(preset.net.loss)

    def loss(p, xb, yb):
        return loss_fn(functional_call(base, p, (xb,)), yb)

    step_grad = vmap(grad(loss))
    full_loss = vmap(loss, in_dims=(0, None, None))
    gen = torch.Generator(device=x.device).manual_seed(preset.seed)
    record: dict = {"steps": [], "loss": [], "norm": []}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for t in range(steps + 1):
            if t % record_every == 0:
                with torch.no_grad():
                    record["steps"].append(t)
                    record["loss"].append(full_loss(params, x, y).double().cpu().numpy())
                    norm2 = sum(v.double().pow(2).flatten(1).sum(1) for v in params.values())
                    record["norm"].append(norm2.sqrt().cpu().numpy())
            if t == steps:
                break
            if batch >= n:
                xb, yb = x.expand(chains, *x.shape), y.expand(chains, *y.shape)
            else:
                idx = torch.randint(n, (chains, batch), generator=gen, device=x.device)
                xb, yb = x[idx], y[idx]
            grads = step_grad(params, xb, yb)
            with torch.no_grad():
                params = {k: v - lr * (grads[k] + wd * v) for k, v in params.items()}
    finally:
        torch.set_num_threads(threads)
    out = {"steps": record["steps"], "loss": np.stack(record["loss"], 1),
           "norm": np.stack(record["norm"], 1)}
    out["diverged"] = not (np.isfinite(out["loss"]).all() and np.isfinite(out["norm"]).all())
    return out
