"""A grid of (learning rate, weight decay) runs per optimiser, and where its optimum lies.

Loshchilov & Hutter (ICLR 2019, arXiv 1711.05101) compare two ways of adding weight decay
to Adam.  *L2* (``torch.optim.Adam(weight_decay=lambda)``) adds :math:`\\lambda\\theta` to
the gradient, so the decay is divided by Adam's :math:`\\sqrt{\\hat v}` like every other
gradient component; *decoupled* weight decay (``torch.optim.AdamW(weight_decay=lambda)``)
shrinks the weights directly,

.. math::

    \\theta \\leftarrow \\theta - \\eta\\,\\Bigl(\\frac{\\hat m}{\\sqrt{\\hat v}+\\epsilon}
    + \\lambda\\,\\theta\\Bigr).

Their claim: on an (:math:`\\eta`, :math:`\\lambda`) grid the good region of Adam + L2 is a
diagonal (the best :math:`\\lambda` depends on :math:`\\eta`), while decoupling makes the two
hyper-parameters nearly separable.  Here both use PyTorch's convention: ``weight_decay`` is
:math:`\\lambda` and the AdamW update shrinks by :math:`\\eta\\lambda\\theta` per step.

``eoslab.sweep`` batches many step sizes of GD/SGD only, so the grid runs its cells one
after the other through :func:`eoslab.experiment.run`, each stored under its config's key:
a grid trained before returns at once, and an interrupted one resumes where it stopped.

Example:
    >>> from eoslab.config import TrainConfig
    >>> base = TrainConfig(dataset="moons", model="fc-relu", width=8, loss="cross-entropy",
    ...                    steps=5, record_every=5)
    >>> g = run_grid(base, [0.01], [0.0, 0.1], optimizers=("adamw",), store=False)
    >>> [(c["optimizer"], c["lr"], c["weight_decay"]) for c in g.cells]
    [('adamw', 0.01, 0.0), ('adamw', 0.01, 0.1)]
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .config import TrainConfig
from .optim import check_lr

__all__ = ["GridResult", "best_per_lr", "grid_configs", "optimum_spread", "run_grid"]


@dataclass
class GridResult:
    """The cells of a grid: one dict per run with ``optimizer, lr, weight_decay, status``
    and the final ``loss, acc, test_loss, test_acc`` (``None`` when absent)."""

    cells: list = field(default_factory=list)

    def table(self, optimizer: str, metric: str = "test_loss") -> tuple[list, list, np.ndarray]:
        """``(lrs, wds, values)`` with ``values[i, j]`` the metric at ``(lrs[i], wds[j])``
        (``nan`` for diverged or missing cells)."""
        cells = [c for c in self.cells if c["optimizer"] == optimizer]
        lrs = sorted({c["lr"] for c in cells})
        wds = sorted({c["weight_decay"] for c in cells})
        values = np.full((len(lrs), len(wds)), np.nan)
        for c in cells:
            v = c.get(metric)
            if v is not None and c["status"] == "finished" and math.isfinite(v):
                values[lrs.index(c["lr"]), wds.index(c["weight_decay"])] = v
        return lrs, wds, values


def _values(name: str, values, check) -> list[float]:
    values = list(values)
    if not values:
        raise ValueError(f"{name} is empty; give at least one value")
    return [check(v) for v in values]


def _wd(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value >= 0):
        raise ValueError(f"weight_decay={value!r} is not allowed; use a finite number >= 0")
    return float(value)


def grid_configs(base: TrainConfig, lrs: Sequence[float], wds: Sequence[float],
                 optimizers: Sequence[str] = ("adam", "adamw")) -> list[TrainConfig]:
    """``base`` with each (optimizer, lr, weight_decay), optimisers outer, then lr, then wd."""
    lrs, wds = _values("lrs", lrs, check_lr), _values("wds", wds, _wd)
    return [base.replace(optimizer=o, lr=lr, weight_decay=wd)
            for o in optimizers for lr in lrs for wd in wds]


def run_grid(base: TrainConfig, lrs: Sequence[float], wds: Sequence[float], *,
             optimizers: Sequence[str] = ("adam", "adamw"), store=None,
             on_cell: Callable[[dict, int, int], None] | None = None,
             stop: threading.Event | None = None) -> GridResult:
    """Train every cell of the grid (stored cells come back at once).

    ``on_cell(cell, index, total)`` is called after each cell; setting ``stop`` ends the
    grid after the running cell (whose run stops too).
    """
    from .experiment import run

    configs = grid_configs(base, lrs, wds, optimizers)
    result = GridResult()
    for i, config in enumerate(configs):
        if stop is not None and stop.is_set():
            break
        res = run(config, stop=stop, store=store)
        last = res.history[-1] if res.history and res.status == "finished" else {}
        cell = {"optimizer": config.optimizer, "lr": config.lr,
                "weight_decay": config.weight_decay, "status": res.status,
                "from_store": bool(res.extra.get("from_store"))}
        cell.update({k: last.get(k) for k in ("loss", "acc", "test_loss", "test_acc")})
        if res.status == "stopped":
            break
        result.cells.append(cell)
        if on_cell is not None:
            on_cell(cell, i, len(configs))
    return result


def best_per_lr(result: GridResult, optimizer: str, metric: str = "test_loss",
                maximize: bool = False) -> list[tuple[float, float | None]]:
    """``(lr, best weight decay)`` for each learning rate (``None`` if no cell finished).

    >>> g = GridResult([{"optimizer": "a", "lr": 0.1, "weight_decay": w, "status": "finished",
    ...                  "test_loss": v} for w, v in [(0.0, 2.0), (0.1, 1.0), (1.0, 3.0)]])
    >>> best_per_lr(g, "a")
    [(0.1, 0.1)]
    """
    lrs, wds, values = result.table(optimizer, metric)
    out = []
    for i, lr in enumerate(lrs):
        row = values[i]
        if np.all(np.isnan(row)):
            out.append((lr, None))
            continue
        j = int(np.nanargmax(row) if maximize else np.nanargmin(row))
        out.append((lr, wds[j]))
    return out


def optimum_spread(result: GridResult, optimizer: str, metric: str = "test_loss",
                   maximize: bool = False) -> float:
    """How far the best weight decay moves across learning rates: the number of grid
    columns between the smallest and largest best-``wd`` index (0: the optimum does not
    depend on the learning rate).

    >>> cells = [{"optimizer": "a", "lr": lr, "weight_decay": w, "status": "finished",
    ...           "test_loss": abs(w - lr)} for lr in (0.1, 1.0) for w in (0.1, 0.5, 1.0)]
    >>> optimum_spread(GridResult(cells), "a")
    2
    """
    _, wds, _ = result.table(optimizer, metric)
    best = [wd for _, wd in best_per_lr(result, optimizer, metric, maximize) if wd is not None]
    if not best:
        return float("nan")
    idx = [wds.index(w) for w in best]
    return max(idx) - min(idx)
