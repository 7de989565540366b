"""Chapter 11's experiment: the loss settles, the weights keep moving, their law settles.

Zhang, Li, Sra, Jadbabaie (ICML 2022, arXiv 2110.06256): the full-batch gradient does not
vanish either.  One SGD run at a fixed step size (with weight decay) through
:func:`eoslab.core.train.fit`, with
:class:`~eoslab.chapters.ch11_invariant_measure.weight_stats.WeightStatsProbe` measuring,
every window of ``record_every`` steps, the full-batch gradient norm, how far the weights
moved (RMS per coordinate) and how far their distribution moved (:math:`W_1` between the
weight entries' empirical laws).

Usage::

    from eoslab.chapters.presets import get_preset
    preset = get_preset("11", "quick")
    result = experiment(preset, {"lr": preset.lr, "batch_size": preset.batch_size,
                                 "weight_decay": preset.weight_decay})
    result["summary"]["w1_drop"]   # late W1 move / first W1 move

:func:`stationarity_summary` gives the chapter's figures.
"""

from __future__ import annotations

import math
import statistics
import threading
from typing import TYPE_CHECKING

import numpy as np
import torch

from eoslab.chapters.ch11_invariant_measure.weight_stats import WeightStatsProbe
from eoslab.core.train import fit

if TYPE_CHECKING:  # the registry imports meta; importing it here first would be circular
    from eoslab.chapters.ch11_invariant_measure.meta import InvariantMeasurePreset

__all__ = ["experiment", "stationarity_summary", "weight_histograms"]

_KEYS = ("loss", "grad_full", "move_rms", "w1", "ks", "ratio", "travel_rms", "path_rms")


def _mean(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.fmean(values) if values else None


def stationarity_summary(history: list[dict]) -> dict | None:
    """The chapter's figures from the recorded rows (quarters of the run by position).

    ``loss_start``, ``loss_late`` (mean over the last quarter), ``loss_settle`` (last quarter's
    mean over the third quarter's), ``grad_start``, ``grad_late``, ``grad_settle`` (the same
    for the full gradient norm), ``move_late`` (mean RMS move per window, last quarter),
    ``w1_first`` (first window), ``w1_late``, ``w1_drop`` = late / first, ``ratio_first``,
    ``ratio_late`` (:math:`W_1/m`), and ``path_late``, ``travel_late``: how much the path
    length and the distance from the start grew over the last quarter.

    >>> rows = [{"step": s, "loss": l, "grad_full": 0.1, "move_rms": 0.01, "w1": w,
    ...          "ratio": w / 0.01, "travel_rms": 0.1, "path_rms": 0.01 * s}
    ...         for s, l, w in [(1, 1.0, 0.008), (2, 0.2, 0.004), (3, 0.2, 0.001), (4, 0.2, 0.001)]]
    >>> s = stationarity_summary(rows); s["loss_settle"], s["w1_drop"], s["grad_settle"]
    (1.0, 0.125, 1.0)
    """
    rows = [r for r in history if r.get("grad_full") is not None]
    if len(rows) < 4:
        return None
    q = len(rows) // 4
    third, last = rows[-2 * q:-q], rows[-q:]
    moved = [r for r in rows if r.get("w1") is not None]
    out = {"loss_start": rows[0]["loss"], "loss_late": _mean(last, "loss"),
           "grad_start": rows[0]["grad_full"], "grad_late": _mean(last, "grad_full"),
           "move_late": _mean(last, "move_rms"), "w1_late": _mean(last, "w1"),
           "ratio_late": _mean(last, "ratio"),
           "path_late": last[-1]["path_rms"] - third[-1]["path_rms"],
           "travel_late": last[-1]["travel_rms"] - third[-1]["travel_rms"]}
    out["loss_settle"] = out["loss_late"] / _mean(third, "loss")
    out["grad_settle"] = out["grad_late"] / _mean(third, "grad_full")
    if moved:
        out.update(w1_first=moved[0]["w1"], ratio_first=moved[0]["ratio"],
                   w1_drop=out["w1_late"] / moved[0]["w1"] if moved[0]["w1"] else None)
    return out


def weight_histograms(snapshots: dict, bins: int = 40, clip: float = 0.995) -> list[dict]:
    """Density rows (``step``, ``x``, ``density``) of each snapshot on common bins.

    The bins span the central ``clip`` mass of all snapshots together (long tails would
    squash the picture).

    >>> rows = weight_histograms({0: np.zeros(4), 5: np.ones(4)}, bins=2, clip=1.0)
    >>> [(r["step"], r["x"], r["density"]) for r in rows]
    [(0, 0.25, 2.0), (0, 0.75, 0.0), (5, 0.25, 0.0), (5, 0.75, 2.0)]
    """
    if not snapshots:
        return []
    everything = np.concatenate([np.asarray(v) for v in snapshots.values()])
    lo, hi = np.quantile(everything, [(1 - clip) / 2, (1 + clip) / 2])
    edges = np.linspace(lo, hi, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    rows = []
    for step, values in sorted(snapshots.items()):
        density, _ = np.histogram(np.clip(values, lo, hi), bins=edges, density=True)
        rows += [{"step": int(step), "x": float(x), "density": float(d)}
                 for x, d in zip(centres, density)]
    return rows


def _clean(value):
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def long_rows(history: list[dict], fields: tuple[str, ...], positive: bool = False) -> list:
    """``{"step", "what", "v"}`` rows of ``history``'s ``fields``, one per finite value.

    Only values ``> 0`` when ``positive`` (a log axis), so an empty list means nothing to draw.

    >>> long_rows([{"step": 0, "a": 1.0, "b": None}, {"step": 5, "a": 0.0, "b": 2.0}],
    ...           ("a", "b"), positive=True)
    [{'step': 0, 'what': 'a', 'v': 1.0}, {'step': 5, 'what': 'b', 'v': 2.0}]
    """
    return [{"step": row["step"], "what": f, "v": v} for row in history for f in fields
            if (v := _clean(row.get(f))) is not None and (v > 0 or not positive)]


def experiment(preset: InvariantMeasurePreset, settings: dict, *, emit=None,
               stop: threading.Event | None = None) -> dict:
    """One SGD run at ``settings`` (``lr``, ``batch_size``, ``weight_decay``).

    A batch size of at least the number of examples is full-batch GD.  Returns ``status``,
    ``lr``, ``batch_size``, ``weight_decay``, ``history`` (rows with the probe's fields and
    ``path_rms``, the running sum of ``move_rms``), ``summary``
    (:func:`stationarity_summary`), ``datasets`` (``history``, ``hist``, and :func:`long_rows`
    of the loss, the full gradient norm, the per-window moves, the path and distance) and,
    if the run blew up, ``diverged``.
    """
    lr, wd = float(settings["lr"]), float(settings["weight_decay"])
    batch = int(settings["batch_size"])
    data, model = preset.net.build()
    batch = None if batch >= data.n_train else max(batch, 1)
    probe = WeightStatsProbe(preset.record_every, weight_decay=wd, track=preset.track,
                             snapshot_every=preset.snapshot_every)
    history: list[dict] = []
    path = [0.0]

    def datasets():
        return {"history": list(history), "hist": weight_histograms(probe.snapshots),
                "loss": long_rows(history, ("loss",), positive=True),
                "grad": long_rows(history, ("grad_full",), positive=True),
                "moves": long_rows(history, ("move_rms", "w1"), positive=True),
                "paths": long_rows(history, ("path_rms", "travel_rms"))}

    def on_row(row):
        if row.get("move_rms") is not None:
            path[0] += row["move_rms"]
        clean = {k: _clean(row.get(k)) for k in _KEYS}
        clean.update(step=row["step"], path_rms=path[0] if "grad_full" in row else None)
        history.append(clean)
        if emit is not None:
            emit(datasets(), row["step"])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets: one thread avoids OpenMP oversubscription stalls
    try:
        run = fit(model, data, preset.net.loss,
                  torch.optim.SGD(model.parameters(), lr=lr, weight_decay=wd),
                  steps=preset.steps, batch_size=batch, record_every=preset.record_every,
                  probes=[probe], callbacks=[on_row], stop=stop, eval_test=False,
                  seed=preset.seed)
    finally:
        torch.set_num_threads(threads)
    result = {"status": run.status, "lr": lr, "batch_size": batch or data.n_train,
              "weight_decay": wd, "history": history,
              "summary": stationarity_summary(history), "datasets": datasets()}
    if run.diverged:
        step, value = run.diverged_at
        result["diverged"] = {"step": step, "loss": value if math.isfinite(value) else 1e308,
                              "lr": lr, "stage": "SGD"}
    return result
