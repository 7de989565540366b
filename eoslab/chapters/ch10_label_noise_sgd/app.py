"""Chapter 10's app: label-noise SGD drifts along the zero-loss manifold to flat minimisers.

Damian, Ma, Lee (NeurIPS 2021, arXiv 2106.06530).  Two stages, both with the step size
:math:`\\eta` and the noise level :math:`\\sigma` of the sliders:

1. the exact model :math:`f = uv` with :math:`y = 1`, started at several points of the
   hyperbola :math:`uv = 1` (:func:`eoslab.chapters.ch10_label_noise_sgd.label_noise.product_label_noise`): the paths end
   at :math:`|u| = |v| = 1`, where :math:`\\operatorname{tr}\\nabla^2 L = u^2 + v^2` is
   smallest (2);
2. a net on digits: plain SGD until it fits, then two continuations from the same point,
   with and without label noise (:class:`eoslab.chapters.ch10_label_noise_sgd.label_noise.LabelNoiseSGD` in
   :func:`eoslab.core.train.fit`), with :math:`\\operatorname{tr}\\nabla^2 L` estimated by
   Hutch++ (:class:`eoslab.chapters.ch10_label_noise_sgd.label_noise.TraceProbe`).

:func:`drift_summary` gives the chapter's figures.
"""

from __future__ import annotations

import copy
import html
import math
import threading

import altair as alt
import torch

from eoslab.chapters.ch10_label_noise_sgd.label_noise import (
    LabelNoiseSGD,
    TraceProbe,
    min_trace,
    product_label_noise,
)
from eoslab.core.data import load_dataset
from eoslab.core.models import build_model
from eoslab.core.train import fit
from eoslab.ui.base import slider
from eoslab.ui.staged import StagedApp

__all__ = ["LabelNoiseApp", "drift_summary", "label_noise_experiment"]

CLEAN, NOISY, WARM = "SGD, no label noise", "label-noise SGD", "plain SGD to fit"


def _finite(v):
    return v if isinstance(v, (int, float)) and math.isfinite(v) else None


def drift_summary(result: dict) -> dict:
    """The chapter's figures from an experiment result.

    ``uv_gap``: largest final :math:`\\lvert |u| - |v| \\rvert` over the replicas;
    ``uv_trace``: largest over the replicas of :math:`u^2 + v^2` averaged over the last
    quarter of the run (2 is the minimum; the noise keeps it jittering); ``uv_start_trace``;
    ``trace_start`` (net, end of the warm-up), ``trace_clean`` and ``trace_noisy`` (end of
    each continuation), ``ratio`` = noisy / clean, ``loss_noisy`` and ``loss_clean``.

    >>> res = {"uv": {"final": [[1.01, 0.99], [-1.0, -1.0]], "start_trace": 6.4},
    ...        "net": [{"run": WARM, "step": 0, "loss": 0.5, "trace": 40.0},
    ...                {"run": CLEAN, "step": 10, "loss": 0.01, "trace": 100.0},
    ...                {"run": NOISY, "step": 10, "loss": 0.02, "trace": 50.0}]}
    >>> s = drift_summary(res); round(s["uv_gap"], 3), s["ratio"], s["trace_start"]
    (0.02, 0.5, 40.0)
    """
    out: dict = {}
    uv = result.get("uv")
    if uv and uv.get("final"):
        finals = uv["final"]
        out["uv_gap"] = max(abs(abs(u) - abs(v)) for u, v in finals)
        out["uv_trace"] = uv.get("tail_trace", max(u * u + v * v for u, v in finals))
        out["uv_start_trace"] = uv["start_trace"]
    last = {}
    for row in result.get("net", []):
        if row.get("trace") is not None:
            last[row["run"]] = row
    if WARM in last:
        out["trace_start"] = last[WARM]["trace"]
    if CLEAN in last and NOISY in last:
        out.update(trace_clean=last[CLEAN]["trace"], trace_noisy=last[NOISY]["trace"],
                   ratio=last[NOISY]["trace"] / last[CLEAN]["trace"],
                   loss_clean=last[CLEAN]["loss"], loss_noisy=last[NOISY]["loss"])
    return out


def _uv_stage(values, lr: float, sigma: float) -> dict:
    theta0 = torch.tensor(values["uv_starts"], dtype=torch.float64)
    traj = product_label_noise(theta0, values["uv_target"], lr, sigma, values["uv_steps"],
                               seed=values.get("seed", 0), record_every=values["uv_record"])
    path, curve = [], []
    for i, step in enumerate(traj.steps.tolist()):
        for r in range(theta0.shape[0]):
            u, v = traj.theta[i, r].tolist()
            if not (math.isfinite(u) and math.isfinite(v)):
                continue
            path.append({"replica": r, "step": step, "u": u, "v": v})
            curve.append({"replica": r, "step": step, "trace": u * u + v * v,
                          "gap": abs(abs(u) - abs(v))})
    tail = traj.trace[-max(1, len(traj.steps) // 4):]
    out = {"path": path, "curve": curve, "final": traj.theta[-1].tolist(),
           "start_trace": float(traj.trace[0].max()),
           "tail_trace": float(tail.mean(0).max()),
           "min_trace": min_trace(values["uv_target"], 2)}
    bad = traj.diverged_at[traj.diverged_at >= 0]
    if bad.numel():
        out["diverged"] = {"step": int(bad.min()), "loss": 1e308, "lr": lr,
                           "stage": "f = uv"}
    return out


def label_noise_experiment(values, settings: dict, emit=None,
                           stop: threading.Event | None = None) -> dict:
    """Both stages at ``settings["lr"]`` and ``settings["sigma"]``; see the module docs.

    Returns ``status``, ``uv`` (paths, final points), ``net`` (rows with ``run``, ``step``,
    ``loss``, ``trace``), ``summary`` (:func:`drift_summary`) and ``datasets``.
    """
    lr, sigma = settings["lr"], settings["sigma"]
    uv = _uv_stage(values, lr, sigma)
    net: list[dict] = []
    result = {"status": "finished", "lr": lr, "sigma": sigma, "uv": uv, "net": net}

    def datasets():
        return {"uv_path": uv["path"], "uv_curve": uv["curve"], "net": list(net)}

    if "diverged" in uv:
        result.update(status="diverged", diverged=uv["diverged"])
    if emit is not None:
        emit(datasets(), 0)
    if result["status"] == "finished":
        _net_stage(values, lr, sigma, net, result, emit, datasets, stop)
    result["summary"] = drift_summary(result)
    result["datasets"] = datasets()
    return result


def _net_stage(values, lr, sigma, net, result, emit, datasets, stop) -> None:
    data = load_dataset(values["dataset"], n_train=values["n_train"], loss=values["loss"],
                        dtype=values.get("dtype", "float32"), device=values.get("device"))
    model = build_model(values["model"], data.input_shape, data.n_outputs,
                        width=values["width"], depth=values["depth"],
                        seed=values.get("model_seed", 0), device=data.x_train.device,
                        dtype=values.get("dtype", "float32"))
    warm = values["warmup"]
    stages = [(WARM, 0.0, warm, 0), (CLEAN, 0.0, values["steps"], warm),
              (NOISY, sigma, values["steps"], warm)]
    done, start_state = 0, None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets: one thread avoids OpenMP oversubscription stalls
    try:
        for name, noise, steps, offset in stages:
            if start_state is not None:
                model.load_state_dict(start_state)
            opt = LabelNoiseSGD(torch.optim.SGD(model.parameters(), lr=lr), noise,
                                seed=values.get("seed", 0) + 1)

            def on_row(row, name=name, offset=offset, done=done):
                net.append({"run": name, "step": row["step"] + offset,
                            "loss": _finite(row.get("loss")),
                            "trace": _finite(row.get("trace"))})
                if emit is not None:
                    emit(datasets(), done + row["step"])

            every = values["record_every"]
            run = fit(model, data, values["loss"], opt, steps=steps,
                      batch_size=values["batch_size"], record_every=every,
                      probes=[TraceProbe(every, values["trace_m"])], callbacks=[on_row],
                      stop=stop, eval_test=False, seed=values.get("seed", 0))
            done += steps
            if run.status != "finished":
                result["status"] = run.status
                if run.diverged:
                    step, value = run.diverged_at
                    result["diverged"] = {"step": step + offset, "loss": value if
                                          math.isfinite(value) else 1e308, "lr": lr,
                                          "stage": name}
                return
            if start_state is None:
                start_state = copy.deepcopy(model.state_dict())
    finally:
        torch.set_num_threads(threads)


def label_noise_layout():
    """Uv paths | uv trace and gap vs step | net trace vs step | net loss vs step."""
    hyper = alt.Chart(alt.Data(values=[{"u": u, "v": 1 / u} for u in
                                       [s * (0.35 + 0.05 * i) for s in (1, -1)
                                        for i in range(56)]])).mark_line(
        color="#999", strokeDash=[4, 3]).encode(x="u:Q", y="v:Q", detail="branch:N"
                                                ).transform_calculate(
        branch="datum.u > 0 ? 'pos' : 'neg'")
    flat = alt.Chart(alt.Data(values=[{"u": 1.0, "v": 1.0}, {"u": -1.0, "v": -1.0}])
                     ).mark_point(shape="diamond", size=120, color="black", filled=True
                                  ).encode(x="u:Q", y="v:Q")
    paths = alt.Chart(alt.Data(name="uv_path")).mark_line(point=alt.OverlayMarkDef(size=8)
                                                          ).encode(
        x=alt.X("u:Q", scale=alt.Scale(domain=[-3, 3])),
        y=alt.Y("v:Q", scale=alt.Scale(domain=[-3, 3])),
        color=alt.Color("replica:N", title="start"), order="step:Q")
    uv = alt.layer(hyper, paths, flat).properties(
        title="f = uv: paths along uv = 1 to |u| = |v| (diamonds)")
    curve = alt.Chart(alt.Data(name="uv_curve")).mark_line().encode(
        x="step:Q", y=alt.Y("trace:Q", title="tr Hessian = u^2 + v^2"),
        color=alt.Color("replica:N", title="start")).properties(
        title="f = uv: tr Hessian falls to its minimum 2")
    color = alt.Color("run:N", title=None, scale=alt.Scale(domain=[WARM, CLEAN, NOISY],
                                                           range=["#7f7f7f", "#1f77b4",
                                                                  "#d62728"]))
    net = alt.Chart(alt.Data(name="net"))
    trace = net.mark_line(point=True).encode(
        x="step:Q", y=alt.Y("trace:Q", title="tr Hessian (Hutch++)"), color=color
    ).transform_filter("isValid(datum.trace)").properties(
        title="net on digits: tr Hessian along the run")
    loss = net.mark_line().encode(
        x="step:Q", y=alt.Y("loss:Q", title="train loss (clean targets)",
                            scale=alt.Scale(type="log")), color=color
    ).transform_filter("datum.loss > 0").properties(title="net on digits: train loss")
    panels = [p.properties(width=250, height=200) for p in (uv, curve, trace, loss)]
    return alt.vconcat(alt.hconcat(*panels[:2]), alt.hconcat(*panels[2:])).resolve_scale(
        color="independent").properties(datasets={"uv_path": [], "uv_curve": [], "net": []})


class LabelNoiseApp(StagedApp):
    """Step size (``eoslab-lr-slider``) and noise level (``eoslab-sigma-slider``); Run/Stop."""

    CHAPTER = "10"
    KIND = "ch10_label_noise_sgd"
    LR_RANGE = (0.01, 3.0, 0.01)

    def make_sliders(self) -> dict:
        return {"sigma": slider("label noise sigma", self.preset["sigma"], 0.0, 1.0, 0.01,
                                "eoslab-sigma-slider", continuous=False)}

    def layout(self):
        return label_noise_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset["warmup"] + 2 * self.preset["steps"]

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        return label_noise_experiment(self.preset.values, settings, emit, stop)

    def describe(self, result: dict) -> str:
        s = result["summary"]
        parts = []
        if "uv_gap" in s:
            parts.append(f"f = uv: from tr Hessian up to {s['uv_start_trace']:.3g}, every start "
                         f"ends within ||u| - |v|| <= {s['uv_gap']:.2g} of the flattest "
                         f"minimiser (late mean tr = {s['uv_trace']:.3g}, minimum 2)")
        if "ratio" in s:
            parts.append(f"net: after fitting tr Hessian = {s['trace_start']:.3g}; without "
                         f"label noise it ends at {s['trace_clean']:.3g} (loss "
                         f"{s['loss_clean']:.2g}), with sigma = {result['sigma']:.3g} at "
                         f"{s['trace_noisy']:.3g} (loss {s['loss_noisy']:.2g}): "
                         f"{s['ratio']:.2f}x")
        return "<br>".join(html.escape(p) for p in parts)
