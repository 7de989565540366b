"""Chapter 05's app: normalised GD and GD on sqrt(L) reach the edge, then flatten.

Arora, Li, Panigrahi (ICML 2022, arXiv 2205.09745).  Each method trains the preset's net
live; the chart shows the loss :math:`L`, the sharpness :math:`S` of :math:`L`, and the
effective edge ratio :math:`\\eta_{\\mathrm{eff}} S / 2` (1 is the edge; see
:mod:`eoslab.optimizers.normalized`).  :func:`sharpness_reduction` is the chapter's figure: how much
the sharpness falls from its peak while the run sits at the edge.
"""

from __future__ import annotations

import html
import statistics
import threading

import altair as alt

from eoslab.core.probe_run import probe_run
from eoslab.optimizers.normalized import EffectiveSharpnessProbe
from eoslab.ui.base import slider
from eoslab.ui.staged import StagedApp

__all__ = ["METHODS", "NormalizedGDApp", "normalized_gd_experiment", "sharpness_reduction"]

METHODS = {"ngd": ("normalised GD", "ngd", "mse"), "sqrt": ("GD on sqrt(L)", "gd", "sqrt-mse")}


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


def _label(method: str, lr: float) -> str:
    return f"{METHODS[method][0]}, eta = {lr:.3g}"


def _rows(method: str, lr: float, history: list[dict]) -> list[dict]:
    out = []
    for r in history:
        loss = r.get("base_loss")
        if loss is None and r.get("loss") is not None:
            loss = r["loss"] ** 2 if method == "sqrt" else r["loss"]
        out.append({"run": _label(method, lr), "step": r["step"], "loss": loss,
                    "sharpness": r.get("sharpness"), "edge_ratio": r.get("edge_ratio")})
    return out


def normalized_gd_experiment(values, settings: dict, emit=None,
                             stop: threading.Event | None = None) -> dict:
    """Train each of the preset's ``methods``; returns ``status``, ``runs`` and ``datasets``.

    ``settings``: ``lr`` (NGD's :math:`\\eta`) and ``sqrt_lr`` (GD on :math:`\\sqrt L`).
    ``runs`` maps a method to its history and :func:`sharpness_reduction` summary.
    """
    runs, done, status, diverged = {}, 0, "finished", None
    for method in values["methods"]:
        name, optimizer, loss = METHODS[method]
        lr = settings["lr"] if method == "ngd" else settings["sqrt_lr"]
        live: list[dict] = []

        def on_row(row, method=method, lr=lr, live=live, done=done):
            live.append(row)
            if emit is not None:
                rows = [x for m, r in runs.items() for x in _rows(m, r["lr"], r["history"])]
                emit({"history": rows + _rows(method, lr, live)}, done + row["step"])

        probe = EffectiveSharpnessProbe(values["sharpness_every"], method=method)
        out = probe_run(values, lr, optimizer=optimizer, loss=loss, probes=[probe],
                        stop=stop, on_row=on_row, stage=name)
        runs[method] = {"lr": lr, "history": out["history"], "status": out["status"],
                        "summary": sharpness_reduction(out["history"])}
        done += values["steps"]
        if out["status"] != "finished":
            status, diverged = out["status"], out.get("diverged")
            break
    rows = [x for m, r in runs.items() for x in _rows(m, r["lr"], r["history"])]
    result = {"status": status, "runs": runs, "datasets": {"history": rows}}
    if diverged:
        result["diverged"] = diverged
    return result


def normalized_layout():
    """Loss, sharpness and the effective edge ratio against the step."""
    base = alt.Chart(alt.Data(name="history"))
    color = alt.Color("run:N", title=None)
    loss = base.mark_line().encode(
        x="step:Q", y=alt.Y("loss:Q", title="train loss L", scale=alt.Scale(type="log")),
        color=color).transform_filter("datum.loss > 0").properties(title="loss L (MSE)")
    sharp = base.mark_line(point=True).encode(
        x="step:Q", y=alt.Y("sharpness:Q", title="sharpness S of L"), color=color
    ).transform_filter("isValid(datum.sharpness)").properties(
        title="sharpness: rises to the edge, then falls")
    ratio = alt.layer(
        base.mark_line(point=True).encode(
            x="step:Q", y=alt.Y("edge_ratio:Q", title="eta_eff * S / 2"), color=color
        ).transform_filter("isValid(datum.edge_ratio)"),
        alt.Chart(alt.Data(values=[{"one": 1.0}])).mark_rule(color="black").encode(y="one:Q"),
    ).properties(title="1 = edge of stability of the effective step")
    panels = [p.properties(width=260, height=200) for p in (loss, sharp, ratio)]
    return alt.hconcat(*panels).properties(datasets={"history": []})


class NormalizedGDApp(StagedApp):
    """Step-size sliders for NGD (``eoslab-lr-slider``) and GD on sqrt(L); Run/Stop; chart."""

    CHAPTER = "05"
    KIND = "ch05_normalized_gd"
    LR_RANGE = (0.01, 20.0, 0.01)

    def make_sliders(self) -> dict:
        return {"sqrt_lr": slider("GD on sqrt(L): eta", self.preset["sqrt_lr"], 0.005, 0.5,
                                  0.005, "eoslab-sqrt-lr-slider", continuous=False)}

    def layout(self):
        return normalized_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset["steps"] * len(self.preset["methods"])

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        return normalized_gd_experiment(self.preset.values, settings, emit, stop)

    def describe(self, result: dict) -> str:
        lines = []
        for method, run in result["runs"].items():
            s = run["summary"]
            if s is None:
                continue
            edge = "n/a" if s["edge_median"] is None else f"{s['edge_median']:.2f}"
            lines.append(html.escape(
                f"{_label(method, run['lr'])}: sharpness peaks at {s['peak']:.3g} (step "
                f"{s['peak_step']}) and ends at {s['final']:.3g}, {s['ratio']:.2f}x the peak; "
                f"median eta_eff*S/2 after the peak {edge}"))
        return "<br>".join(lines)
