"""Chapter 12's app: periodic destabilisations of a scale-invariant net under weight decay.

Lobacheva, Kodryan, Chirkova, Malinin, Vetrov (NeurIPS 2021, arXiv 2106.15739).  One run
of GD (or SGD) with weight decay :math:`\\lambda` on a
:class:`~eoslab.curvature.scale_invariance.ScaleInvariantMLP`; the chart shows the train loss, the
weight norm :math:`\\lVert w\\rVert` of the scale-invariant weights, the effective step
:math:`\\eta/\\lVert w\\rVert^2` and the edge ratio :math:`\\eta\\lambda_{\\max}/2` against the
step, with a rule at each destabilisation that :func:`eoslab.chapters.ch12_bn_wd_periodic.periodic.period_summary` finds.
Its median period times :math:`\\eta\\lambda` is the chapter's figure.

Since :math:`\\lambda_{\\max}(\\nabla^2 L(w)) = S_{\\rm sph}/\\lVert w\\rVert^2`, the edge ratio is
the effective step times the spherical sharpness over 2: weight decay raises it through the
quiet phase and each spike comes when it reaches 1, the edge of stability of chapter 02.
"""

from __future__ import annotations

import html
import math
import statistics
import threading

import altair as alt
import torch

from eoslab.chapters.ch12_bn_wd_periodic.periodic import period_summary
from eoslab.core.data import load_dataset
from eoslab.core.train import fit
from eoslab.curvature.scale_invariance import ScaleInvariantMLP, ScaleInvariantProbe
from eoslab.ui.base import slider
from eoslab.ui.staged import StagedApp, divergence_text

__all__ = ["BNWeightDecayApp", "bn_wd_experiment", "bn_wd_layout", "build_si_model",
           "edge_before_spikes"]

STAGE = "GD + weight decay"


def build_si_model(values, data) -> ScaleInvariantMLP:
    """The preset's scale-invariant MLP for ``data`` (same dtype and device)."""
    net = ScaleInvariantMLP(math.prod(data.input_shape), data.n_outputs, width=values["width"],
                            depth=values["depth"], norm=values.get("norm", "batch"),
                            out_scale=values.get("out_scale", 10.0),
                            eps=values.get("eps", 1e-5), seed=values.get("model_seed", 0))
    return net.to(device=data.x_train.device, dtype=data.x_train.dtype)


def _row(r: dict, lr: float) -> dict:
    keep = ("step", "loss", "acc", "si_norm", "eff_lr", "sharpness")
    row = {k: (None if isinstance(r.get(k), float) and not math.isfinite(r[k]) else r.get(k))
           for k in keep}
    row["edge_ratio"] = lr * row["sharpness"] / 2 if row["sharpness"] is not None else None
    return row


def edge_before_spikes(history: list[dict], events: list[dict]) -> list[float | None]:
    """The edge ratio :math:`\\eta\\lambda_{\\max}/2` at the last probe before each event.

    >>> rows = [{"step": 0, "edge_ratio": 0.2}, {"step": 10, "edge_ratio": 0.9},
    ...         {"step": 20, "edge_ratio": None}, {"step": 30, "edge_ratio": 0.1}]
    >>> edge_before_spikes(rows, [{"step": 20}, {"step": 0}])
    [0.9, None]
    """
    out = []
    for event in events:
        before = [r["edge_ratio"] for r in history
                  if r["step"] < event["step"] and r.get("edge_ratio") is not None]
        out.append(before[-1] if before else None)
    return out


def bn_wd_experiment(values, settings: dict, emit=None,
                     stop: threading.Event | None = None) -> dict:
    """Train at ``settings["lr"]`` and ``settings["wd"]``; returns the JSON-ready result.

    Keys: ``status``, ``lr``, ``wd``, ``history`` (step, loss, acc, si_norm, eff_lr),
    ``summary`` (:func:`~eoslab.chapters.ch12_bn_wd_periodic.periodic.period_summary`), ``seconds``, ``datasets``
    (``history`` and ``events``) and, if the run blew up, ``diverged``.
    """
    lr, wd = float(settings["lr"]), float(settings["wd"])
    data = load_dataset(values["dataset"], n_train=values["n_train"], loss=values["loss"],
                        dtype=values.get("dtype", "float32"), device=values.get("device"))
    model = build_si_model(values, data)
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=wd)
    rows: list[dict] = []

    def on_row(row):
        rows.append(_row(row, lr))
        if emit is not None:
            emit({"history": list(rows)}, row["step"])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets: one thread avoids OpenMP oversubscription stalls
    try:
        run = fit(model, data, values["loss"], opt, steps=values["steps"],
                  batch_size=values.get("batch_size"), record_every=values["record_every"],
                  probes=[ScaleInvariantProbe(values["record_every"]),
                          ScaleInvariantProbe(values["sharpness_every"], sharpness=True)],
                  callbacks=[on_row],
                  stop=stop, eval_test=False)
    finally:
        torch.set_num_threads(threads)
    summary = period_summary(rows, lr, wd)
    summary["edge_before"] = edge_before_spikes(rows, summary["events"])
    events = [{"step": e["step"]} for e in summary["events"]]
    result = {"status": run.status, "lr": lr, "wd": wd, "history": rows, "summary": summary,
              "seconds": run.seconds, "datasets": {"history": rows, "events": events}}
    if run.diverged:
        step, value = run.diverged_at
        result["diverged"] = {"step": step, "loss": value if math.isfinite(value) else 1e308,
                              "lr": lr, "stage": STAGE}
    return result


def bn_wd_layout():
    """Train loss, weight norm, effective step and edge ratio against the step; rules at spikes."""
    history = alt.Chart(alt.Data(name="history"))
    rules = alt.Chart(alt.Data(name="events")).mark_rule(color="#d62728", strokeDash=[4, 3],
                                                          opacity=0.6).encode(x="step:Q")

    def panel(field, title, color, heading):
        line = history.mark_line(color=color).encode(
            x=alt.X("step:Q", title="step"),
            y=alt.Y(f"{field}:Q", title=title, scale=alt.Scale(type="log"))
        ).transform_filter(f"isValid(datum.{field}) && datum.{field} > 0")
        return alt.layer(line, rules).properties(title=heading, width=300, height=180)

    one = alt.Chart(alt.Data(values=[{"one": 1.0}])).mark_rule(color="black").encode(y="one:Q")
    return alt.vconcat(
        alt.hconcat(
            panel("loss", "train loss (cross-entropy)", "#1f77b4",
                  "train loss: quiet, spike, quiet"),
            panel("si_norm", "||w|| (scale-invariant weights)", "#2ca02c",
                  "weight norm: WD shrinks it, a spike inflates it")),
        alt.hconcat(
            panel("eff_lr", "eta / ||w||^2", "#ff7f0e", "effective step size rises to the spike"),
            alt.layer(panel("edge_ratio", "eta * lambda_max / 2", "#9467bd",
                            "edge ratio: each spike comes at 1 (black)"), one)),
    ).properties(datasets={"history": [], "events": []})


class BNWeightDecayApp(StagedApp):
    """Step size (``eoslab-lr-slider``) and weight decay (``eoslab-wd-slider``); Run/Stop; chart.

    The step-size slider reaches past :math:`2/\\lambda`, where the weight-decay step alone,
    :math:`w \\leftarrow (1-\\eta\\lambda) w`, overshoots and the weights blow up.
    """

    CHAPTER = "12"
    KIND = "ch12_bn_wd_periodic"
    LR_RANGE = (0.01, 25.0, 0.01)

    def make_sliders(self) -> dict:
        return {"wd": slider("weight decay lambda", self.preset["wd"], 0.0, 0.5, 0.005,
                             "eoslab-wd-slider", continuous=False)}

    def layout(self):
        return bn_wd_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset["steps"]

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        return bn_wd_experiment(self.preset.values, settings, emit, stop)

    def _status(self, result: dict) -> str:
        if result.get("status") != "diverged":
            return super()._status(result)
        lr, wd = result["lr"], result["wd"]
        text = divergence_text(result)
        if lr * wd > 2:
            text += (f"; here eta * lambda = {lr * wd:.3g} > 2, so the weight-decay step "
                     f"w <- (1 - eta lambda) w alone overshoots and |w| explodes")
        return html.escape(text) + (" (from the store)" if result.get("from_store") else "")

    def describe(self, result: dict) -> str:
        s, lr, wd = result["summary"], result["lr"], result["wd"]
        last = result["history"][-1] if result["history"] else {}
        if s["count"] == 0:
            return html.escape(
                f"no destabilisation in {self.preset['steps']} steps (eta * lambda = "
                f"{lr * wd:.3g}); final ||w|| = {last.get('si_norm', float('nan')):.3g}, "
                f"effective step {last.get('eff_lr', float('nan')):.3g}: raise eta or lambda")
        events = s["events"]
        first = events[0]
        edges = [e for e in s.get("edge_before", []) if e is not None]
        text = (f"{s['count']} destabilisation(s) at steps "
                f"{', '.join(str(e['step']) for e in events[:8])}"
                f"{' ...' if len(events) > 8 else ''}; the first came when eta/||w||^2 had "
                f"risen to {first['eff_lr_before']:.3g}, and the loss jumped from "
                f"{first['loss_before']:.2g} to {first['loss_peak']:.3g}")
        if edges:
            text += (f"; eta * lambda_max / 2 just before the spikes: median "
                     f"{statistics.median(edges):.2g} (1 = edge of stability)")
        if s["median_period"] is not None:
            text += (f". Median period {s['median_period']:.0f} steps = "
                     f"{s['scaled_period']:.2f} / (eta * lambda); within a period weight decay "
                     f"shrinks ||w|| {s['median_shrink']:.3g}x, so the effective step grows "
                     f"{s['median_shrink'] ** 2:.3g}x")
        return html.escape(text)
