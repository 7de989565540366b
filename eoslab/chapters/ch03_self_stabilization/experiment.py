"""Chapter 03's experiment: the self-stabilisation cycle and GD tracking the constrained run.

Damian, Nichani, Lee (ICLR 2023, arXiv 2209.15594).  One GD run of the preset's net with
:class:`~eoslab.chapters.ch03_self_stabilization.constrained.SelfStabilizationProbe`, which
runs projected GD on :math:`\\{S \\le 2/\\eta\\}` beside it.  Each row holds the sharpness of
both, the displacement :math:`x` along the top eigenvector, :math:`y = S - 2/\\eta`, the
distance between the two trajectories and the losses.  :func:`cycle_summary` gives the
chapter's figures; :func:`prediction_summary` compares the measured cycle with the paper's
reduced cubic model of :math:`(x, y)`
(:func:`~eoslab.chapters.ch03_self_stabilization.constrained.predicted_xy`), iterated from
the measured state where the blow-up of :math:`|x|` begins.

Usage (the quick preset; tests/chapters/test_ch03_self_stabilization.py asserts it)::

    from eoslab.chapters.presets import get_preset
    preset = get_preset("03", "quick")
    result = experiment(preset, {"lr": preset.lr})
    result["summary"]["return_y"] < result["summary"]["peak_y"]   # True
"""

from __future__ import annotations

import threading

from eoslab.chapters.ch03_self_stabilization import charts
from eoslab.chapters.ch03_self_stabilization.constrained import (
    SelfStabilizationProbe,
    predicted_xy,
)
from eoslab.chapters.ch03_self_stabilization.meta import SelfStabilizationPreset
from eoslab.core.probe_run import probe_run

__all__ = ["cycle_summary", "experiment", "prediction_summary"]


def cycle_summary(history: list[dict], lr: float) -> dict | None:
    """The four phases in numbers, or ``None`` if the sharpness never crossed :math:`2/\\eta`.

    ``entry_step`` (first :math:`y > 0`), ``peak_y`` and ``peak_step`` (largest overshoot),
    ``return_y`` (smallest :math:`y` after the peak: the self-stabilised sharpness),
    ``max_abs_x``, ``x_at_entry``, ``max_distance``, ``travel`` (final
    :math:`\\lVert\\theta_T - \\theta_0\\rVert`), ``dagger_max_ratio`` (largest
    :math:`S(\\theta^\\dagger)\\,\\eta/2`) and ``blowups`` (times :math:`|x|` first exceeds
    half its maximum after being below a tenth of it).

    >>> rows = [{"step": s, "y": y, "x": x, "distance": d, "travel": 1.0,
    ...          "dagger_sharpness": 3.0} for s, y, x, d in
    ...         [(0, -1.0, 0.0, 0.0), (2, 0.5, 0.001, 0.01), (4, 1.0, 0.3, 0.1),
    ...          (6, -0.1, 0.01, 0.05)]]
    >>> s = cycle_summary(rows, 0.66)
    >>> s["entry_step"], s["peak_y"], s["return_y"], s["blowups"]
    (2, 1.0, -0.1, 1)
    """
    rows = [r for r in history if r.get("y") is not None]
    entry = next((r for r in rows if r["y"] > 0), None)
    if entry is None:
        return None
    peak = max(rows, key=lambda r: r["y"])
    after = [r for r in rows if r["step"] >= peak["step"]]
    xs = [abs(r["x"]) for r in rows]
    top = max(xs)
    blowups, armed = 0, True
    for value in xs:
        if armed and value > 0.5 * top:
            blowups, armed = blowups + 1, False
        elif value < 0.1 * top:
            armed = True
    return {"entry_step": entry["step"], "x_at_entry": abs(entry["x"]), "peak_y": peak["y"],
            "peak_step": peak["step"], "return_y": min(r["y"] for r in after),
            "max_abs_x": top, "max_distance": max(r["distance"] for r in rows),
            "travel": rows[-1]["travel"], "blowups": blowups,
            "dagger_max_ratio": max(r["dagger_sharpness"] for r in rows) * lr / 2}


def prediction_summary(history: list[dict], predicted: list[dict]) -> dict | None:
    """Measured vs predicted peak of :math:`y = S - 2/\\eta`, or ``None`` without a prediction.

    Keys: ``start`` (the step the prediction starts from), ``peak_y`` and ``peak_step``
    (measured, after ``start``), ``pred_peak_y`` and ``pred_peak_step`` (predicted), and
    ``pred_end`` (the last predicted step: where the predicted :math:`y` is back at 0).

    >>> rows = [{"step": s, "y": y} for s, y in [(0, 0.5), (2, 1.0), (4, 0.2)]]
    >>> pred = [{"step": s, "y": y} for s, y in [(0, 0.5), (1, 0.9), (2, -0.1)]]
    >>> prediction_summary(rows, pred)["pred_peak_step"]
    1
    """
    if not predicted:
        return None
    start = predicted[0]["step"]
    after = [r for r in history if r.get("y") is not None and r["step"] >= start]
    peak = max(after, key=lambda r: r["y"])
    pred_peak = max(predicted, key=lambda r: r["y"])
    return {"start": start, "peak_y": peak["y"], "peak_step": peak["step"],
            "pred_peak_y": pred_peak["y"], "pred_peak_step": pred_peak["step"],
            "pred_end": predicted[-1]["step"]}


def experiment(preset: SelfStabilizationPreset, settings: dict, *, emit=None,
               stop: threading.Event | None = None) -> dict:
    """One GD run at ``settings["lr"]`` with the constrained trajectory beside it.

    Returns ``status``, ``history`` (every recorded row), ``lr``, ``summary``
    (:func:`cycle_summary`), ``prediction`` (:func:`prediction_summary`), ``datasets``
    (:func:`~eoslab.chapters.ch03_self_stabilization.charts.cycle_data`; the prediction is
    added once the run has ended) and ``diverged`` when GD blew up.  ``emit(datasets,
    step)`` streams the rows as they come.
    """
    lr = settings["lr"]
    live: list[dict] = []

    def on_row(row):
        live.append(row)
        if emit is not None:
            emit(charts.cycle_data(live, [], lr), row["step"])

    spec = preset.projection
    probe = SelfStabilizationProbe(spec.every, eig_tol=spec.eig_tol,
                                   eig_max_iter=spec.eig_max_iter, rtol=spec.rtol,
                                   max_steps=spec.newton_steps)
    out = probe_run(preset.net, lr, steps=preset.steps, record_every=preset.record_every,
                    probes=[probe], stop=stop, on_row=on_row)
    out["summary"] = cycle_summary(out["history"], lr)
    predicted = predicted_xy(out["history"], lr) if out["summary"] is not None else []
    out["prediction"] = prediction_summary(out["history"], predicted)
    out["datasets"] = charts.cycle_data(out["history"], predicted, lr)
    return out
