"""Chapter 07's app: the ReLU bias turns negative only past a critical step size.

The pipeline (:func:`threshold_experiment`) runs in the background through
:class:`~eoslab.ui.staged.StagedApp`:

1. the task and the initial sharpness :math:`\\lambda_0` of every init, hence the edge
   :math:`\\eta^* = 2/\\lambda_0`;
2. the bias and the loss along GD at the slider's step size and at a few multiples of
   :math:`\\eta^*`, against time :math:`\\eta t`;
3. the final bias and test accuracy over a grid of step sizes around :math:`\\eta^*`
   (every init), all runs for the same time.
"""

from __future__ import annotations

import html
import math
import threading

import altair as alt
import numpy as np
import torch

from eoslab.chapters.ch07_threshold_neurons.threshold_neuron import (
    init_params,
    initial_sharpness,
    network_output,
    sparse_coding,
    train,
)
from eoslab.core.devices import resolve_device
from eoslab.speed.threads import single_thread
from eoslab.ui.base import slider
from eoslab.ui.plots import HEIGHT, WIDTH
from eoslab.ui.staged import StagedApp

__all__ = ["ThresholdNeuronsApp", "threshold_experiment", "threshold_layout",
           "transition_summary"]


def threshold_layout():
    """Final bias vs eta | bias along GD | loss along GD."""
    lr_x = alt.X("lr:Q", title="step size eta", scale=alt.Scale(type="log"))
    dots = alt.Chart(alt.Data(name="final")).mark_circle(size=30, opacity=0.5).encode(
        x=lr_x, y=alt.Y("bias:Q", title="bias b after time eta*T"),
        tooltip=["lr:Q", "ratio:Q", "seed:N", "bias:Q", "test_acc:Q"])
    mean = alt.Chart(alt.Data(name="final")).mark_line(color="black").encode(
        x=lr_x, y="mean(bias):Q")
    edge = alt.Chart(alt.Data(name="edge")).mark_rule(color="red", strokeDash=[6, 4]).encode(
        x=alt.X("lr:Q"))
    zero = alt.Chart(alt.Data(values=[{"zero": 0.0}])).mark_rule(color="#999").encode(
        y="zero:Q")
    final = alt.layer(zero, dots, mean, edge).properties(
        width=WIDTH, height=HEIGHT, title="final bias vs eta (dashed: eta* = 2/lambda_0)")
    acc = alt.Chart(alt.Data(name="final")).mark_line(point=True, color="#2ca02c").encode(
        x=lr_x, y=alt.Y("mean(test_acc):Q", title="test accuracy",
                        scale=alt.Scale(zero=False))).properties(
        width=WIDTH, height=HEIGHT, title="test accuracy vs eta (mean over inits)")
    color = alt.Color("run:N", title="run")
    traj_b = alt.Chart(alt.Data(name="traj")).mark_line().encode(
        x=alt.X("time:Q", title="time eta*t"), y=alt.Y("bias:Q", title="bias b"),
        color=color).properties(width=WIDTH, height=HEIGHT, title="the bias along GD")
    traj_l = alt.Chart(alt.Data(name="traj")).mark_line().encode(
        x=alt.X("time:Q", title="time eta*t"),
        y=alt.Y("loss:Q", title="train loss", scale=alt.Scale(zero=False)),
        color=color).properties(width=WIDTH, height=HEIGHT,
                                title="train loss along GD (it jumps up past eta*)")
    return alt.vconcat(alt.hconcat(final, traj_b), alt.hconcat(acc, traj_l)).resolve_scale(
        color="independent")


def transition_summary(final: list[dict]) -> dict:
    """Mean final bias below the edge (ratio < 0.9) and far above it (ratio >= 2).

    >>> transition_summary([{"ratio": 0.5, "bias": -0.01}, {"ratio": 2.5, "bias": -1.0},
    ...                     {"ratio": 2.0, "bias": -0.6}])
    {'below': -0.01, 'above': -0.8}
    """
    below = [r["bias"] for r in final if r["ratio"] < 0.9]
    above = [r["bias"] for r in final if r["ratio"] >= 2.0]
    return {"below": float(np.mean(below)) if below else float("nan"),
            "above": float(np.mean(above)) if above else float("nan")}


def _label(lr: float, star: float) -> str:
    return f"eta = {lr:.3g} ({lr / star:.2g} eta*)"


def threshold_experiment(values, settings: dict, emit=None,
                         stop: threading.Event | None = None) -> dict:
    """The chapter's three stages (see the module docs); returns a JSON-ready result."""
    emit = emit or (lambda *_: None)
    d, seeds = int(values["d"]), [int(s) for s in values["seeds"]]
    time_, min_steps = float(settings.get("time", values["time"])), int(values["min_steps"])
    x, y = sparse_coding(int(values["n"]), d, values["signal"], seed=int(values["data_seed"]))
    xt, yt = sparse_coding(int(values["n_test"]), d, values["signal"],
                           seed=int(values["data_seed"]) + 1000)
    device = resolve_device(values.get("device", "cpu"))
    x, y, xt, yt = (t.to(device) for t in (x, y, xt, yt))
    lam0 = initial_sharpness(init_params(d, seeds, device=device), x, y)
    star = 2.0 / float(np.mean(lam0))
    out = {"status": "finished", "lambda0": lam0, "eta_star": star, "d": d,
           "theory_eta_star": 8 * math.pi / d, "edge": [{"lr": star}]}
    emit({"edge": out["edge"]}, 1)
    # 2. trajectories at the slider's step size and the reference multiples of eta*
    lr = float(settings["lr"])
    lrs = [lr] + [star * r for r in values["traj_ratios"]]
    traj = train(init_params(d, [seeds[0]] * len(lrs), device=device), x, y, lrs, time_,
                 min_steps,
                 stop=stop)
    rows_ = []
    for c, eta in enumerate(lrs):
        name = ("slider: " if c == 0 else "") + _label(eta, star)
        for t, b, loss in zip(traj["history_steps"], traj["bias"][:, c].tolist(),
                              traj["loss"][:, c].tolist()):
            if t > traj["steps"][c]:
                break
            rows_.append({"time": eta * t, "step": t, "bias": b, "loss": loss, "run": name})
    out["traj"] = rows_
    emit({"traj": rows_}, 2)
    if stop is not None and stop.is_set():
        return {**out, "status": "stopped", "datasets": {}}
    if traj["dead"][0]:
        below = traj["bias"][:, 0] <= -float(x.abs().max())
        at = int(torch.nonzero(below).flatten()[0])
        out.update(status="diverged", diverged={
            "step": at, "loss": float(traj["loss"][at, 0]), "lr": lr,
            "stage": f"the ReLU layer (bias {float(traj['bias'][at, 0]):.3g}: every unit off)"})
        out["datasets"] = _datasets(out)
        return out
    # 3. the grid of step sizes around eta*
    ratios = np.geomspace(values["ratio_min"], values["ratio_max"], int(values["n_lrs"]))
    grid_lrs = [star * float(r) for _ in seeds for r in ratios]
    params = init_params(d, [s for s in seeds for _ in ratios], device=device)
    res = train(params, x, y, grid_lrs, time_, min_steps, record_every=10 ** 9, stop=stop)
    if stop is not None and stop.is_set():
        return {**out, "status": "stopped", "datasets": {}}
    acc = ((network_output(res["params"], xt) * yt) > 0).double().mean(-1).tolist()
    bias = res["params"]["bias"].tolist()
    final = []
    for i, (eta, b, a) in enumerate(zip(grid_lrs, bias, acc)):
        final.append({"lr": eta, "ratio": eta / star, "seed": seeds[i // len(ratios)],
                      "bias": b, "test_acc": a, "dead": res["dead"][i]})
    out["final"] = final
    out["summary"] = transition_summary(final)
    out["datasets"] = _datasets(out)
    return out


def _datasets(result: dict) -> dict:
    return {"final": result.get("final", []), "traj": result.get("traj", []),
            "edge": result.get("edge", [])}


class ThresholdNeuronsApp(StagedApp):
    """Step size and training time sliders; final bias vs eta, trajectories, accuracy.

    CSS classes: those of :class:`StagedApp` plus ``eoslab-time-slider``.
    """

    CHAPTER = "07"
    KIND = "ch07_threshold_neurons"
    LR_RANGE = (0.01, 5.0, 0.01)

    def make_sliders(self) -> dict:
        self.time = slider("training time eta*T", self.preset["time"], 1.0, 50.0, 1.0,
                           "eoslab-time-slider", continuous=False)
        return {"time": self.time}

    def layout(self):
        return threshold_layout()

    def total_work(self, settings: dict) -> int:
        return 3

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        with single_thread():  # small tensors: one intra-op thread is faster (eoslab.speed.threads)
            return threshold_experiment(self.preset.values, settings, emit, stop)

    def describe(self, result: dict) -> str:
        s, star = result["summary"], result["eta_star"]
        accs: dict = {}
        for r in result["final"]:
            accs.setdefault(r["ratio"], []).append(r["test_acc"])
        mean_acc = {k: float(np.mean(v)) for k, v in accs.items()}
        best = max(mean_acc, key=mean_acc.get)
        below = [v for k, v in mean_acc.items() if k < 0.9]
        return html.escape(
            f"initial sharpness {np.mean(result['lambda0']):.3g}, so the edge of stability is "
            f"eta* = 2/lambda_0 = {star:.3g} (8 pi/d = {result['theory_eta_star']:.3g}). "
            f"Final bias: {s['below']:+.3f} on average below 0.9 eta*, {s['above']:+.3f} at "
            f"2-3 eta* (a threshold neuron). Best test accuracy {mean_acc[best]:.3f} at "
            f"{best:.2g} eta* (below 0.9 eta*: {max(below, default=float('nan')):.3f} at best).")
