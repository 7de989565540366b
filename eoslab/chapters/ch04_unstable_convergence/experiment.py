"""Chapter 04's experiment: the loss converges while eta * lambda_max > 2.

Ahn, Zhang, Sra (ICML 2022, arXiv 2204.01050).  One GD run of the preset's net, probed by
:class:`~eoslab.chapters.ch04_unstable_convergence.progress.UnstableConvergenceProbe`:
:math:`\\eta S`, the relative progress ratio RP and the alignment
:math:`|\\cos(\\nabla L, u_1)|`.  :func:`unstable_summary` splits the run at the first step
with :math:`\\eta S > 2` and compares the stable part with the unstable part, which is the
chapter's figure.

Usage::

    from eoslab.chapters.presets import get_preset
    preset = get_preset("04", "quick")
    result = experiment(preset, {"lr": preset.lr})
    result["summary"]["above_fraction"] > 0
    # True
"""

from __future__ import annotations

import statistics
import threading

from eoslab.chapters.ch04_unstable_convergence.meta import UnstableConvergencePreset
from eoslab.chapters.ch04_unstable_convergence.progress import UnstableConvergenceProbe
from eoslab.core.probe_run import probe_run

__all__ = ["experiment", "unstable_summary"]


def unstable_summary(history: list[dict]) -> dict | None:
    """Stable part (before :math:`\\eta S` first exceeds 2) vs unstable part (after).

    Returns the entry step, the fraction of unstable-part probes with :math:`\\eta S > 2`,
    median RP and mean alignment in each part, and the loss at entry and at the end;
    ``None`` if the run never crossed.

    >>> rows = [{"step": 0, "loss": 1.0, "eta_sharpness": 1.0, "rp": -0.9, "alignment": 0.1},
    ...         {"step": 5, "loss": 0.5, "eta_sharpness": 2.2, "rp": -0.1, "alignment": 0.6},
    ...         {"step": 10, "loss": 0.4, "eta_sharpness": 1.9, "rp": 0.1, "alignment": 0.8}]
    >>> s = unstable_summary(rows)
    >>> s["entry_step"], s["above_fraction"], s["rp_stable"], s["loss_end"]
    (5, 0.5, -0.9, 0.4)
    """
    rows = [r for r in history if r.get("eta_sharpness") is not None]
    entry = next((r for r in rows if r["eta_sharpness"] > 2.0), None)
    if entry is None:
        return None
    before = [r for r in rows if r["step"] < entry["step"]]
    after = [r for r in rows if r["step"] >= entry["step"]]

    def med(part, key):
        vals = [r[key] for r in part if r.get(key) is not None]
        return statistics.median(vals) if vals else None

    def mean(part, key):
        vals = [r[key] for r in part if r.get(key) is not None]
        return sum(vals) / len(vals) if vals else None

    return {"entry_step": entry["step"],
            "above_fraction": sum(r["eta_sharpness"] > 2.0 for r in after) / len(after),
            "eta_sharpness_median": med(after, "eta_sharpness"),
            "rp_stable": med(before, "rp"), "rp_unstable": med(after, "rp"),
            "alignment_stable": mean(before, "alignment"),
            "alignment_unstable": mean(after, "alignment"),
            "loss_entry": entry["loss"], "loss_end": rows[-1]["loss"]}


def experiment(preset: UnstableConvergencePreset, settings: dict, *, emit=None,
               stop: threading.Event | None = None) -> dict:
    """One GD run at ``settings["lr"]``.

    Returns ``status``, ``history`` (the recorded rows, also the chart's ``history``
    dataset), ``summary`` (:func:`unstable_summary`), ``datasets`` and ``diverged`` when GD
    blew up.  ``emit(datasets, step)`` streams the rows as they come.
    """
    lr = settings["lr"]
    live: list[dict] = []

    def on_row(row):
        live.append(row)
        if emit is not None:
            emit({"history": list(live)}, row["step"])

    out = probe_run(preset.net, lr, steps=preset.steps, record_every=preset.record_every,
                    probes=[UnstableConvergenceProbe(preset.probe_every)], stop=stop,
                    on_row=on_row)
    out["summary"] = unstable_summary(out["history"])
    out["datasets"] = {"history": out["history"]}
    return out
