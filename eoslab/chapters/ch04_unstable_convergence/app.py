"""Chapter 04's app: the loss converges while eta * lambda_max > 2.

Ahn, Zhang, Sra (ICML 2022, arXiv 2204.01050).  One GD run of the preset's net, probed by
:class:`~eoslab.chapters.ch04_unstable_convergence.progress.UnstableConvergenceProbe`: :math:`\\eta S`, the relative progress
ratio RP and the alignment :math:`|\\cos(\\nabla L, u_1)|`.  :func:`unstable_summary` splits
the run at the first step with :math:`\\eta S > 2` and compares the stable part with the
unstable part, which is the chapter's figure.
"""

from __future__ import annotations

import html
import statistics
import threading

import altair as alt

from eoslab.chapters.ch04_unstable_convergence.progress import UnstableConvergenceProbe
from eoslab.core.probe_run import probe_run
from eoslab.ui.staged import StagedApp

__all__ = ["UnstableConvergenceApp", "unstable_convergence_experiment", "unstable_summary"]


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


def unstable_convergence_experiment(values, settings: dict, emit=None,
                                    stop: threading.Event | None = None) -> dict:
    """One GD run at ``settings["lr"]``; returns ``status``, ``history``, ``summary``, ``datasets``."""
    lr = settings["lr"]
    live: list[dict] = []

    def on_row(row):
        live.append(row)
        if emit is not None:
            emit({"history": list(live)}, row["step"])

    out = probe_run(values, lr, probes=[UnstableConvergenceProbe(values["probe_every"])],
                    stop=stop, on_row=on_row)
    out["summary"] = unstable_summary(out["history"])
    out["datasets"] = {"history": out["history"]}
    return out


def unstable_layout():
    """Loss, eta*S (rule at 2), RP (rules at 0 and -1) and the alignment, against the step."""
    base = alt.Chart(alt.Data(name="history"))

    def rule(value, color="black", dash=(6, 4)):
        return alt.Chart(alt.Data(values=[{"v": value}])).mark_rule(
            color=color, strokeDash=list(dash)).encode(y="v:Q")

    loss = base.mark_line().encode(
        x="step:Q", y=alt.Y("loss:Q", title="train loss", scale=alt.Scale(type="log"))
    ).transform_filter("datum.loss > 0").properties(title="the loss still converges")
    sharp = alt.layer(base.mark_line(point=True, color="#d62728").encode(
        x="step:Q", y=alt.Y("eta_sharpness:Q", title="eta * lambda_max")
    ).transform_filter("isValid(datum.eta_sharpness)"), rule(2.0)).properties(
        title="eta * lambda_max; dashed: 2 (descent lemma's limit)")
    rp = alt.layer(base.mark_line(point=True, color="#2ca02c").encode(
        x="step:Q", y=alt.Y("rp:Q", title="relative progress RP",
                            scale=alt.Scale(domain=[-1.5, 1.5], clamp=True))
    ).transform_filter("isValid(datum.rp)"), rule(0.0), rule(-1.0, "#888")).properties(
        title="RP = (L(t+1) - L(t)) / (eta |g|^2); -1: stable, 0: no progress")
    align = base.mark_line(point=True, color="#9467bd").encode(
        x="step:Q", y=alt.Y("alignment:Q", title="|cos(grad, u_1)|",
                            scale=alt.Scale(domain=[0, 1]))
    ).transform_filter("isValid(datum.alignment)").properties(
        title="gradient alignment with the top eigenvector")
    panels = [p.properties(width=280, height=190) for p in (loss, sharp, rp, align)]
    return alt.vconcat(alt.hconcat(panels[0], panels[1]), alt.hconcat(panels[2], panels[3])
                       ).properties(datasets={"history": []})


class UnstableConvergenceApp(StagedApp):
    """The step-size slider (``eoslab-lr-slider``), Run/Stop and the four panels."""

    CHAPTER = "04"
    KIND = "ch04_unstable_convergence"
    LR_RANGE = (0.01, 4.0, 0.01)

    def layout(self):
        return unstable_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset["steps"]

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        return unstable_convergence_experiment(self.preset.values, settings, emit, stop)

    def describe(self, result: dict) -> str:
        s = result["summary"]
        last = result["history"][-1]["loss"] if result["history"] else float("nan")
        if s is None:
            return html.escape(f"eta * lambda_max stayed below 2 (stable GD); loss ends at "
                               f"{last:.3g}: raise eta to see unstable convergence")

        def f(v):
            return "n/a" if v is None else f"{v:.2f}"
        return html.escape(
            f"eta * lambda_max first exceeds 2 at step {s['entry_step']}; afterwards it is "
            f"above 2 at {100 * s['above_fraction']:.0f}% of the probes (median "
            f"{f(s['eta_sharpness_median'])}), yet the loss goes {s['loss_entry']:.3g} -> "
            f"{s['loss_end']:.3g}. Median RP: {f(s['rp_stable'])} before, "
            f"{f(s['rp_unstable'])} after; mean |cos(grad, u_1)|: "
            f"{f(s['alignment_stable'])} before, {f(s['alignment_unstable'])} after")
