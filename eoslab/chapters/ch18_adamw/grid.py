"""A grid of (learning rate, weight decay) runs per optimiser, and where its optimum lies.

Loshchilov & Hutter (ICLR 2019, arXiv 1711.05101) compare two ways of adding weight decay
to Adam.  *L2* (``torch.optim.Adam(weight_decay=lambda)``) adds :math:`\\lambda\\theta` to
the gradient, so the decay is divided by Adam's :math:`\\sqrt{\\hat v}` like every other
gradient component; *decoupled* weight decay shrinks the weights outside the adaptive step.
The paper writes the decoupled update with the learning rate :math:`\\alpha` and the
schedule multiplier :math:`\\eta_t` as

.. math::

    \\theta_t = \\theta_{t-1} - \\eta_t\\Bigl(\\alpha\\,\\frac{\\hat m_t}{\\sqrt{\\hat v_t}
    +\\epsilon} + \\lambda\\,\\theta_{t-1}\\Bigr),

so the shrink per step is :math:`\\eta_t\\lambda`, *independent of* :math:`\\alpha` (the
authors' code multiplies the decay by the schedule multiplier only).  PyTorch's
``AdamW(lr, weight_decay)`` shrinks by :math:`\\mathrm{lr}_t\\cdot\\mathrm{weight\\_decay}`
instead.  ``decay="paper"`` makes a grid axis :math:`\\lambda` mean the paper's quantity by
passing ``weight_decay = lambda / lr`` to ``torch.optim.AdamW`` (then
:math:`\\mathrm{lr}_t\\cdot\\mathrm{weight\\_decay} = \\eta_t\\lambda` exactly, with any
``torch.optim.lr_scheduler``); ``decay="torch"`` passes :math:`\\lambda` as it is.  L2
(``adam``) is the same in both conventions.

The claim the grid tests: the best :math:`\\lambda` of Adam + L2 depends on the learning
rate (a diagonal valley), the best decoupled :math:`\\lambda` much less.
:func:`optimum_spread` measures how far the best :math:`\\lambda` moves across the rows.

``eoslab.core.sweep`` batches many step sizes of GD/SGD only, so the grid runs its cells one
after the other through :func:`eoslab.core.experiment.run`, each stored under its config's key:
a grid trained before returns at once, and an interrupted one resumes where it stopped.

Example:
    >>> from eoslab.core.config import TrainConfig
    >>> base = TrainConfig(dataset="moons", model="fc-relu", width=8, loss="cross-entropy",
    ...                    steps=5, record_every=5)
    >>> g = run_grid(base, [0.01], [0.0, 0.1], optimizers=("adamw",), store=False)
    >>> [(c["optimizer"], c["lr"], c["weight_decay"]) for c in g.cells]
    [('adamw', 0.01, 0.0), ('adamw', 0.01, 0.1)]
    >>> [c.weight_decay for c in grid_configs(base, [0.01], [0.1], ("adamw",), "paper")]
    [10.0]
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from eoslab.core.config import TrainConfig
from eoslab.core.optim import check_lr

__all__ = ["DECAY_CONVENTIONS", "GridResult", "best_per_lr", "cell_of", "grid_cells",
           "grid_configs", "optimum_spread", "run_grid"]

DECAY_CONVENTIONS = ("torch", "paper")


@dataclass
class GridResult:
    """The cells of a grid, one dict per run.

    Each cell has ``optimizer, lr, weight_decay`` (the grid's :math:`\\lambda`), ``seed,
    status`` and the final ``loss, acc, test_loss, test_acc`` (``None`` when absent).
    """

    cells: list = field(default_factory=list)

    def table(self, optimizer: str, metric: str = "test_loss") -> tuple[list, list, np.ndarray]:
        """``(lrs, wds, values)``: ``values[i, j]`` is the metric at ``(lrs[i], wds[j])``.

        The metric is averaged over the seeds that finished (``nan`` where none did).
        """
        cells = [c for c in self.cells if c["optimizer"] == optimizer]
        lrs = sorted({c["lr"] for c in cells})
        wds = sorted({c["weight_decay"] for c in cells})
        total, count = np.zeros((len(lrs), len(wds))), np.zeros((len(lrs), len(wds)))
        for c in cells:
            v = c.get(metric)
            if v is not None and c["status"] == "finished" and math.isfinite(v):
                i, j = lrs.index(c["lr"]), wds.index(c["weight_decay"])
                total[i, j] += v
                count[i, j] += 1
        with np.errstate(invalid="ignore"):
            return lrs, wds, np.where(count > 0, total / np.maximum(count, 1), np.nan)


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


def _seed(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"seed={value!r} is not allowed; use an integer >= 0")
    return value


def grid_cells(base: TrainConfig, lrs: Sequence[float], wds, optimizers: Sequence[str] = (
        "adam", "adamw"), decay: str = "torch", seeds: Sequence[int] = (0,)
               ) -> list[tuple[dict, TrainConfig]]:
    """``(cell, config)`` per run: seeds outer, then optimiser, lr, weight decay.

    ``wds`` is one list for every optimiser or a mapping ``{optimizer: list}``.  ``cell``
    names the grid point (``optimizer, lr, weight_decay = lambda, seed``); ``config`` is the
    run: ``base`` with that optimiser and lr, ``model_seed = seed = seed``, and torch's
    ``weight_decay`` from :math:`\\lambda` by the ``decay`` convention (module docstring).
    """
    if decay not in DECAY_CONVENTIONS:
        raise ValueError(f"decay={decay!r} is not allowed; use one of {DECAY_CONVENTIONS}")
    lrs = _values("lrs", lrs, check_lr)
    seeds = _values("seeds", seeds, _seed)
    per = {o: _values(f"wds[{o!r}]" if isinstance(wds, Mapping) else "wds",
                      wds[o] if isinstance(wds, Mapping) else wds, _wd) for o in optimizers}
    out = []
    for seed in seeds:
        for o in optimizers:
            for lr in lrs:
                for lam in per[o]:
                    torch_wd = lam / lr if (decay == "paper" and o == "adamw") else lam
                    cell = {"optimizer": o, "lr": lr, "weight_decay": lam, "seed": seed}
                    out.append((cell, base.replace(optimizer=o, lr=lr, weight_decay=torch_wd,
                                                   model_seed=seed, seed=seed)))
    return out


def grid_configs(base: TrainConfig, lrs: Sequence[float], wds,
                 optimizers: Sequence[str] = ("adam", "adamw"), decay: str = "torch",
                 seeds: Sequence[int] = (0,)) -> list[TrainConfig]:
    """The configs of :func:`grid_cells` (seeds, optimisers, then lr, then wd)."""
    return [config for _, config in grid_cells(base, lrs, wds, optimizers, decay, seeds)]


def run_grid(base: TrainConfig, lrs: Sequence[float], wds, *,
             optimizers: Sequence[str] = ("adam", "adamw"), decay: str = "torch",
             seeds: Sequence[int] = (0,), store=None,
             on_cell: Callable[[dict, int, int], None] | None = None,
             stop: threading.Event | None = None) -> GridResult:
    """Train every cell of the grid (stored cells come back at once); see :func:`grid_cells`.

    ``on_cell(cell, index, total)`` is called after each cell; setting ``stop`` ends the
    grid after the running cell (whose run stops too).
    """
    from eoslab.core.experiment import run

    runs = grid_cells(base, lrs, wds, optimizers, decay, seeds)
    result = GridResult()
    for i, (cell, config) in enumerate(runs):
        if stop is not None and stop.is_set():
            break
        res = run(config, stop=stop, store=store)
        if res.status == "stopped":
            break
        result.cells.append(cell_of(cell, res))
        if on_cell is not None:
            on_cell(result.cells[-1], i, len(runs))
    return result


def cell_of(cell: dict, res) -> dict:
    """``cell`` with the status and final metrics of the run result ``res``."""
    last = res.history[-1] if res.history and res.status == "finished" else {}
    out = {**cell, "status": res.status, "from_store": bool(res.extra.get("from_store"))}
    out.update({k: last.get(k) for k in ("loss", "acc", "test_loss", "test_acc")})
    return out


def best_per_lr(result: GridResult, optimizer: str, metric: str = "test_loss",
                maximize: bool = False) -> list[tuple[float, float | None]]:
    """``(lr, best weight decay)`` for each learning rate, on the seed-averaged table.

    The best weight decay is ``None`` where no cell of that learning rate finished.

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
                   maximize: bool = False, units: str = "columns") -> float:
    """How far the best weight decay moves across learning rates.

    0 means the optimum does not depend on the learning rate.

    ``units="columns"``: grid columns between the smallest and largest best-``wd`` index;
    ``units="decades"``: :math:`\\log_{10}(\\lambda^*_{\\max}/\\lambda^*_{\\min})` (``nan``
    if a best ``wd`` is 0).

    >>> cells = [{"optimizer": "a", "lr": lr, "weight_decay": w, "status": "finished",
    ...           "test_loss": abs(w - lr)} for lr in (0.1, 1.0) for w in (0.1, 0.5, 1.0)]
    >>> optimum_spread(GridResult(cells), "a"), optimum_spread(GridResult(cells), "a",
    ...                                                        units="decades")
    (2, 1.0)
    """
    if units not in ("columns", "decades"):
        raise ValueError(f"units={units!r} is not allowed; use 'columns' or 'decades'")
    _, wds, _ = result.table(optimizer, metric)
    best = [wd for _, wd in best_per_lr(result, optimizer, metric, maximize) if wd is not None]
    if not best:
        return float("nan")
    if units == "decades":
        if min(best) <= 0:
            return float("nan")
        return float(math.log10(max(best) / min(best)))
    idx = [wds.index(w) for w in best]
    return max(idx) - min(idx)
