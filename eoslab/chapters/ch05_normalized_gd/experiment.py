"""Chapter 05's experiment: normalised GD and GD on sqrt(L) reach the edge, then flatten.

Arora, Li, Panigrahi (ICML 2022, arXiv 2205.09745).  Each of the preset's methods trains
the preset's net: normalised GD on :math:`L` at step size ``lr`` and GD on
:math:`\\sqrt L` at ``sqrt_lr``.  Rows hold the loss :math:`L`, the sharpness :math:`S` of
:math:`L` and the effective edge ratio :math:`\\eta_{\\mathrm{eff}} S / 2` (1 is the edge;
see :mod:`eoslab.optimizers.normalized`).  :func:`sharpness_reduction` is the chapter's
figure: how much the sharpness falls from its peak while the run sits at the edge.

Usage::

    from eoslab.chapters.presets import get_preset
    preset = get_preset("05", "quick")
    result = experiment(preset, {"lr": preset.lr, "sqrt_lr": preset.sqrt_lr})
    result["runs"]["ngd"]["summary"]["ratio"] < 1
    # True
"""

from __future__ import annotations

import math
import statistics
import threading

from eoslab.chapters.ch05_normalized_gd.meta import NormalizedGDPreset
from eoslab.core.probe_run import probe_run
from eoslab.optimizers.normalized import EffectiveSharpnessProbe

__all__ = ["METHODS", "experiment", "run_label", "sharpness_reduction"]

# method -> (name, optimizer of probe_run, training loss)
METHODS = {"ngd": ("normalised GD", "ngd", "mse"), "sqrt": ("GD on √L", "gd", "sqrt-mse")}


def sharpness_reduction(history: list[dict]) -> dict | None:
    """Peak sharpness, final sharpness, their ratio and the median edge ratio after the peak.

    >>> rows = [{"step": s, "sharpness": v, "edge_ratio": r}
    ...         for s, v, r in [(0, 1.0, 0.1), (10, 4.0, 1.0), (20, 3.0, 1.1), (30, 2.0, 1.0)]]
    >>> sharpness_reduction(rows)
    {'peak': 4.0, 'peak_step': 10, 'final': 2.0, 'ratio': 0.5, 'edge_median': 1.0}
    """
    rows = [r for r in history if r.get("sharpness") is not None]
    if not rows:
        return None
    peak = max(rows, key=lambda r: r["sharpness"])
    after = [r["edge_ratio"] for r in rows if r["step"] >= peak["step"]
             and r.get("edge_ratio") is not None]
    final = rows[-1]["sharpness"]
    return {"peak": peak["sharpness"], "peak_step": peak["step"], "final": final,
            "ratio": final / peak["sharpness"],
            "edge_median": statistics.median(after) if after else None}


def run_label(method: str, lr: float) -> str:
    """The chart's name of one run, e.g. ``"normalised GD, η = 0.1"``."""
    return f"{METHODS[method][0]}, η = {lr:.3g}"


def _rows(method: str, lr: float, history: list[dict]) -> list[dict]:
    out = []
    for r in history:
        loss = r.get("base_loss")
        if loss is None and r.get("loss") is not None:
            loss = r["loss"] ** 2 if method == "sqrt" else r["loss"]
        out.append({"run": run_label(method, lr), "step": r["step"], "loss": _finite(loss),
                    "sharpness": _finite(r.get("sharpness")),
                    "edge_ratio": _finite(r.get("edge_ratio"))})
    return out


def _finite(value):
    """``value`` if it is a finite number, else ``None`` (the chart skips it)."""
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


def experiment(preset: NormalizedGDPreset, settings: dict, *, emit=None,
               stop: threading.Event | None = None) -> dict:
    """Train each of the preset's ``methods``; returns ``status``, ``runs`` and ``datasets``.

    ``settings``: ``lr`` (NGD's :math:`\\eta`) and ``sqrt_lr`` (GD on :math:`\\sqrt L`).
    ``runs`` maps a method to its ``lr``, ``history``, ``status`` and
    :func:`sharpness_reduction` ``summary``; ``datasets["history"]`` holds the rows of all
    runs, named by :func:`run_label`.  A run that blows up keeps its rows and its
    ``diverged``; the other methods still train, and the result carries the first
    ``diverged``.
    """
    runs, done, status, diverged = {}, 0, "finished", None
    for method in preset.methods:
        name, optimizer, loss = METHODS[method]
        lr = settings["lr"] if method == "ngd" else settings["sqrt_lr"]
        live: list[dict] = []

        def on_row(row, method=method, lr=lr, live=live, done=done):
            live.append(row)
            if emit is not None:
                rows = [x for m, r in runs.items() for x in _rows(m, r["lr"], r["history"])]
                emit({"history": rows + _rows(method, lr, live)}, done + row["step"])

        probe = EffectiveSharpnessProbe(preset.sharpness_every, method=method)
        out = probe_run(preset.net, lr, steps=preset.steps, record_every=preset.record_every,
                        optimizer=optimizer, loss=loss, probes=[probe], stop=stop,
                        on_row=on_row, stage=name)
        runs[method] = {"lr": lr, "history": out["history"], "status": out["status"],
                        "summary": sharpness_reduction(out["history"]),
                        "diverged": out.get("diverged")}
        done += preset.steps
        if out["status"] == "stopped":
            status = "stopped"
            break
        if out["status"] == "diverged" and diverged is None:  # the other runs still train
            status, diverged = "diverged", out["diverged"]
    rows = [x for m, r in runs.items() for x in _rows(m, r["lr"], r["history"])]
    result = {"status": status, "runs": runs, "datasets": {"history": rows}}
    if diverged:
        result["diverged"] = diverged
    return result
