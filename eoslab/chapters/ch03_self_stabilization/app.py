"""Chapter 03's app: the self-stabilisation cycle and GD tracking the constrained trajectory.

Damian, Nichani, Lee (ICLR 2023, arXiv 2209.15594).  One GD run of the preset's net with
:class:`~eoslab.chapters.ch03_self_stabilization.constrained.SelfStabilizationProbe`, which runs projected GD on
:math:`\\{S \\le 2/\\eta\\}` beside it.  The chart shows the sharpness of both, the
displacement :math:`x` along the top eigenvector, the :math:`(|x|, y)` phase portrait with
:math:`y = S - 2/\\eta`, the distance between the two trajectories, and the losses.
:func:`cycle_summary` gives the chapter's figures.
"""

from __future__ import annotations

import html
import threading

import altair as alt

from eoslab.chapters.ch03_self_stabilization.constrained import SelfStabilizationProbe
from eoslab.core.probe_run import probe_run
from eoslab.ui.staged import StagedApp

__all__ = ["SelfStabilizationApp", "cycle_summary", "self_stabilization_experiment"]


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
    ...         [(0, -1.0, 0.0, 0.0), (2, 0.5, 0.001, 0.01), (4, 1.0, 0.3, 0.1), (6, -0.1, 0.01, 0.05)]]
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


def _chart_rows(history: list[dict], lr: float) -> list[dict]:
    out = []
    for r in history:
        if r.get("y") is None:
            continue
        out.append({"step": r["step"], "loss": r.get("loss"), "dagger_loss": r.get("dagger_loss"),
                    "sharpness": r["sharpness"], "dagger_sharpness": r["dagger_sharpness"],
                    "edge": 2 / lr, "x": r["x"], "abs_x": abs(r["x"]), "y": r["y"],
                    "distance": r["distance"], "travel": r["travel"]})
    return out


def self_stabilization_experiment(values, settings: dict, emit=None,
                                  stop: threading.Event | None = None) -> dict:
    """One GD run at ``settings["lr"]`` with the constrained trajectory beside it."""
    lr = settings["lr"]
    live: list[dict] = []

    def on_row(row):
        live.append(row)
        if emit is not None:
            emit({"history": _chart_rows(live, lr)}, row["step"])

    probe = SelfStabilizationProbe(values["probe_every"], eig_tol=values["eig_tol"],
                                   eig_max_iter=values["eig_max_iter"], rtol=values["rtol"],
                                   max_steps=values["newton_steps"])
    out = probe_run(values, lr, probes=[probe], stop=stop, on_row=on_row)
    out["summary"] = cycle_summary(out["history"], lr)
    out["datasets"] = {"history": _chart_rows(out["history"], lr)}
    return out


def cycle_layout():
    """Sharpness of GD and of the constrained run, x, the (|x|, y) portrait, distance, losses."""
    base = alt.Chart(alt.Data(name="history"))
    sharp = base.transform_fold(["sharpness", "dagger_sharpness", "edge"], as_=["curve", "v"]
                                ).mark_line().encode(
        x="step:Q", y=alt.Y("v:Q", title="sharpness"),
        color=alt.Color("curve:N", title=None, scale=alt.Scale(
            domain=["sharpness", "dagger_sharpness", "edge"],
            range=["#d62728", "#1f77b4", "black"])),
        strokeDash=alt.condition("datum.curve == 'edge'", alt.value([6, 4]), alt.value([1, 0]))
    ).properties(title="S(GD) red, S(constrained) blue, 2/eta dashed")
    x = base.mark_line(color="#ff7f0e").encode(
        x="step:Q", y=alt.Y("x:Q", title="x = u . (theta - theta_dagger)")
    ).properties(title="displacement along the top eigenvector")
    portrait = alt.layer(
        base.mark_line(point=alt.OverlayMarkDef(size=12), color="#999").encode(
            x=alt.X("abs_x:Q", title="|x|"), y=alt.Y("y:Q", title="y = S - 2/eta"),
            order="step:Q"),
        base.mark_circle(size=18).encode(x="abs_x:Q", y="y:Q",
                                         color=alt.Color("step:Q", scale=alt.Scale(
                                             scheme="viridis"))),
        alt.Chart(alt.Data(values=[{"v": 0.0}])).mark_rule(strokeDash=[6, 4]).encode(y="v:Q"),
    ).properties(title="phase portrait (|x|, y), coloured by step")
    dist = base.transform_fold(["distance", "travel"], as_=["curve", "v"]).mark_line().encode(
        x="step:Q", y=alt.Y("v:Q", title="norm"), color=alt.Color("curve:N", title=None)
    ).properties(title="|theta - theta_dagger| vs |theta - theta_0|")
    loss = base.transform_fold(["loss", "dagger_loss"], as_=["curve", "v"]).mark_line().encode(
        x="step:Q", y=alt.Y("v:Q", title="train loss", scale=alt.Scale(type="log")),
        color=alt.Color("curve:N", title=None)).transform_filter("datum.v > 0").properties(
        title="loss of GD and of the constrained trajectory")
    panels = [p.properties(width=250, height=180) for p in (sharp, x, portrait, dist, loss)]
    return alt.vconcat(alt.hconcat(*panels[:3]), alt.hconcat(*panels[3:])).properties(
        datasets={"history": []})


class SelfStabilizationApp(StagedApp):
    """The step-size slider (``eoslab-lr-slider``), Run/Stop and the five panels."""

    CHAPTER = "03"
    KIND = "ch03_self_stabilization"
    LR_RANGE = (0.05, 4.0, 0.01)

    def layout(self):
        return cycle_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset["steps"]

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        return self_stabilization_experiment(self.preset.values, settings, emit, stop)

    def describe(self, result: dict) -> str:
        s = result["summary"]
        lr = result["lr"]
        if s is None:
            return html.escape(f"the sharpness stayed below 2/eta = {2 / lr:.3g}: GD and the "
                               "constrained trajectory coincide; raise eta")
        return html.escape(
            f"S crosses 2/eta = {2 / lr:.3g} at step {s['entry_step']}, overshoots by up to "
            f"{s['peak_y']:.3g} (step {s['peak_step']}) while |x| grows from "
            f"{s['x_at_entry']:.2g} to {s['max_abs_x']:.2g} ({s['blowups']} blow-up(s)), then "
            f"self-stabilises back to S - 2/eta = {s['return_y']:.2g}. The constrained "
            f"trajectory keeps S <= {s['dagger_max_ratio']:.3f} x 2/eta; GD stays within "
            f"{s['max_distance']:.3g} of it while travelling {s['travel']:.3g} from its start")
