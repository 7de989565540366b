"""Chapter 09's app: which minima SGD can stay at, and its escape from the others.

Wu and Su (ICML 2023, arXiv 2305.17490); Wu, Ma, E (NeurIPS 2018).  The step-size and
batch-size sliders and Run drive
:func:`~eoslab.chapters.ch09_sgd_stability.experiment.experiment`; the chart shows the
stability ratios at GD's minimum against the batch size, the loss of SGD and of GD started
at that minimum, the ratios at the minimum and where SGD ends, and the second half: on a
diagonal linear net, :math:`\\mathrm{Tr}H`, :math:`\\lVert\\beta\\rVert_1` and the test error
where SGD ends, against its step size.  The batch slider's
maximum follows the preset's ``n_train``.

Usage (in a notebook)::

    from eoslab.chapters.ch09_sgd_stability.app import SgdStabilityApp
    app = SgdStabilityApp()  # preset: preset_for("09")
    app.run()  # trains in the background
    app
"""

from __future__ import annotations

import html

import altair as alt
import ipywidgets as widgets

from eoslab.chapters.ch09_sgd_stability.experiment import experiment
from eoslab.ui.app import ChapterApp

__all__ = ["SgdStabilityApp", "sgd_stability_layout"]


def _legend(title: str | None = None) -> alt.Legend:
    return alt.Legend(title=title, orient="bottom", columns=2, labelLimit=260)


def sgd_stability_layout():
    """Stability ratios vs B | loss from the minimum; before/after | Tr H vs η; ‖β‖₁, test.

    Two panels per row (legends below them), so the chart fits a 1024-px page.
    """
    crit = alt.Color("criterion:N", legend=_legend("ratio (≤ 1: SGD can stay)"))
    one = alt.Chart(alt.Data(values=[{"v": 1.0}])).mark_rule(color="black",
                                                            strokeDash=[6, 4]).encode(y="v:Q")
    ratios = alt.Chart(alt.Data(name="ratios")).mark_line().encode(
        x=alt.X("batch_size:Q", title="batch size B", scale=alt.Scale(type="log", base=2)),
        y=alt.Y("ratio:Q", title="ratio at GD's minimum",
                scale=alt.Scale(type="log", domain={"unionWith": [0.5, 2]})),
        color=crit).transform_filter("datum.ratio > 0")
    chosen = alt.Chart(alt.Data(name="chosen")).mark_rule(color="#888").encode(x="batch_size:Q")
    left = alt.layer(ratios, one, chosen).properties(
        title="which batch sizes can stay at GD's minimum", width=300, height=200)
    loss = alt.Chart(alt.Data(name="loss")).mark_line().encode(
        x=alt.X("step:Q", title="step from the minimum"),
        y=alt.Y("loss:Q", title="train loss",
                scale=alt.Scale(type="log", domain={"unionWith": [1e-6, 1e-4]})),
        color=alt.Color("run:N", legend=_legend("optimiser"))).transform_filter(
        "datum.loss > 0").properties(title="started at GD's minimum: stay or escape",
                                     width=300, height=200)
    curv = alt.Chart(alt.Data(name="curvature")).mark_point(filled=True, size=90).encode(
        x=alt.X("criterion:N", title=None, axis=alt.Axis(labelAngle=-20, labelLimit=220)),
        y=alt.Y("ratio:Q", title="ratio at the chosen B",
                scale=alt.Scale(type="log", domain={"unionWith": [0.5, 2]})),
        shape=alt.Shape("point:N", legend=_legend("point")),
        color=alt.Color("point:N", legend=_legend("point")))
    right = alt.layer(curv, one).properties(title="the minimum SGD leaves vs the one it finds",
                                            width=300, height=200)
    norms = alt.Chart(alt.Data(name="norms"))
    points = ["where SGD ends", "GD's minimum", "2/η (B = 1 stability)"]
    point = alt.Color("point:N", legend=_legend("value"), scale=alt.Scale(domain=points))
    dashes = alt.Scale(domain=points, range=[[1, 0], [6, 4], [2, 2]])
    dash = alt.StrokeDash("point:N", legend=_legend("value"), scale=dashes)  # merged with
    # the colour legend of the same field (a legend=None here conflicts with it)
    trace = norms.mark_line().encode(
        x=alt.X("eta:Q", title="SGD step size η (B = 1)"),
        y=alt.Y("value:Q", title="Tr H",
                scale=alt.Scale(type="log", domain={"unionWith": [10, 100]})),
        color=point, strokeDash=dash).transform_filter(
        "datum.quantity == 'Tr H' && datum.value > 0").properties(
        title="diagonal net: Tr H where SGD ends", width=300, height=200)
    norm = norms.mark_line().encode(
        x=alt.X("eta:Q", title="SGD step size η (B = 1)"),
        y=alt.Y("value:Q", title="value",
                scale=alt.Scale(type="log", domain={"unionWith": [0.1, 1]})),
        color=alt.Color("what:N", legend=_legend("value")),
        strokeDash=alt.StrokeDash(
            "point:N", legend=alt.Legend(title="line", orient="bottom", symbolType="stroke"),
            scale=alt.Scale(domain=points[:2], range=[[1, 0], [6, 4]]))
    ).transform_filter(
        "datum.quantity != 'Tr H' && datum.value > 0").transform_calculate(
        what="datum.quantity").properties(
        title="‖β‖₁ and test error (dashed: GD's minimum)", width=300, height=200)
    indep = {"color": "independent", "shape": "independent", "strokeDash": "independent"}
    return alt.vconcat(alt.hconcat(left, loss).resolve_scale(**indep),
                       alt.hconcat(right, trace).resolve_scale(**indep), norm).resolve_scale(
        **indep).properties(
        datasets={"ratios": [], "chosen": [], "loss": [], "curvature": [], "norms": []})


def escape_state(result: dict) -> str:
    """What SGD did from GD's minimum: stayed, escaped and settled, or diverged at step t."""
    d = result.get("diverged")
    if d is not None and d["stage"].startswith("SGD"):
        return f"SGD diverged at step {d['step']}"
    s = result["summary"]
    if s is None:
        return "SGD did not run"
    if not s["escaped"]:
        return (f"SGD stayed: its loss rose at most {s['sgd_peak']:.2g}× and ends at "
                f"{s['sgd_end']:.2g}")
    return f"SGD escaped (loss up {s['sgd_peak']:.2g}×) and settled at loss {s['sgd_end']:.2g}"


def norms_state(norms: dict | None) -> str:
    """The second half in words: GD's minimum against where SGD ends at the largest η."""
    if not norms or norms.get("gd") is None:
        return "diagonal net: not run"
    gd, done = norms["gd"], [r for r in norms["runs"] if r["status"] == "finished"]
    parts = [f"SGD at η = {r['lr']:g} diverged at step {r['step']}"
             for r in norms["runs"] if r["status"] == "diverged"]
    if done:
        r = max(done, key=lambda r: r["lr"])
        parts.insert(0, f"SGD (B = 1) at η = {r['lr']:g} ends at Tr H = {r['trace']:.3g} "
                        f"(2/η = {2 / r['lr']:.3g}), ‖β‖₁ = {r['l1']:.3g}, test error "
                        f"{r['test']:.2g}")
    return (f"Diagonal net: GD's minimum has Tr H = {gd['trace']:.3g}, ‖β‖₁ = {gd['l1']:.3g}, "
            f"test error {gd['test']:.2g}; " + "; ".join(parts))


class SgdStabilityApp(ChapterApp):
    """Step size and batch size of the SGD started at GD's minimum; Run/Stop; five panels.

    CSS: ``eoslab-lr-slider`` (step size, spanning ``LR_SPAN`` times the preset's
    ``lr_edge``, :math:`2/\\lambda_{\\max}` at GD's minimum), ``eoslab-batch-slider`` (batch
    size, up to the preset's ``n_train``).
    """

    CHAPTER = "09"
    KIND = "ch09_sgd_stability"
    LR_RANGE = (0.01, 4.0, 0.01)  # used where a preset has no lr_edge
    LR_SPAN = (0.1, 3.0)  # the slider spans 0.1x to 3x the edge 2/lambda_max
    LR_LABEL = "step size η"
    LR_EDGE_LABEL = "η (2/λ_max = {edge:.2g})"
    experiment = staticmethod(experiment)

    def make_sliders(self) -> dict:
        batch = widgets.IntSlider(value=self.preset.batch_size, min=1,
                                  max=self.preset.net.n_train, description="batch size B",
                                  continuous_update=False, layout=widgets.Layout(width="480px"),
                                  style={"description_width": "160px"})
        batch.add_class("eoslab-batch-slider")
        return {"batch_size": batch}

    def slider_range(self, name: str, preset) -> tuple[float, float] | None:
        if name == "batch_size":
            return (1, preset.net.n_train)
        return super().slider_range(name, preset)

    def layout(self, settings: dict):
        return sgd_stability_layout()

    def total_work(self, settings: dict) -> int:
        return 2 * self.preset.steps + len(self.preset.norms.lrs)

    def describe(self, result: dict) -> str:
        r = result["at_min"]
        lr, b = result["lr"], result["batch_size"]
        text = (f"At GD's minimum: η λ_max / 2 = {r['gd_ratio']:.2f} (GD "
                f"{'can' if r['gd_ratio'] <= 1 else 'cannot'} stay); with B = {b}, "
                f"η c_B Tr H / 2 = {r['trace_ratio']:.2f} and the exact mean-square growth "
                f"per step is {r['ms_rate']:.3f} (SGD "
                f"{'can' if r['ms_rate'] <= 1 + 1e-9 else 'cannot'} stay). ")
        text += escape_state(result)
        end = result.get("at_end")
        if end is not None and result["summary"]["escaped"]:
            text += (f"; there Tr H = {end['trace']:.3g} (was {r['trace']:.3g}), growth "
                     f"{end['ms_rate']:.3f}")
        text += (f". The one-example noise at GD's minimum is aligned with the Hessian: μ = "
                 f"{result['alignment']:.2f}")
        d = result.get("diverged")
        if d is not None and d["stage"].startswith("GD"):
            text += f"; GD at η = {lr:g} from the same minimum diverged at step {d['step']}"
        elif result["summary"] is not None and result["summary"]["gd_peak"] is not None:
            text += (f"; GD at η = {lr:g} from the same minimum: loss up at most "
                     f"{result['summary']['gd_peak']:.2g}×")
        return html.escape(text + ".") + "<br>" + html.escape(norms_state(result.get("norms")))

    def describe_diverged(self, result: dict) -> str:
        if "at_min" not in result:  # diverged before GD's minimum was analysed
            return super().describe_diverged(result)
        return self.describe(result)
