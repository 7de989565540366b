"""Chapter 13's app: weight decay lowers the spherical sharpness; BatchNorm smooths the path.

Lyu, Li, Arora (NeurIPS 2022, arXiv 2206.07085) and Santurkar, Tsipras, Ilyas, Madry
(NeurIPS 2018, arXiv 1805.11604).  Three full-batch GD runs at one step size :math:`\\eta`:

* ``bn_wd``: the scale-invariant BatchNorm MLP with weight decay :math:`\\lambda`;
* ``bn``: the same net without weight decay;
* ``plain``: the same MLP without BatchNorm (not scale-invariant).

The two BatchNorm runs are probed for the spherical sharpness
:math:`\\lVert w\\rVert^2 \\lambda_{\\max}(\\nabla^2 L)` and the effective step
:math:`\\eta/\\lVert w\\rVert^2` (:class:`~eoslab.curvature.scale_invariance.ScaleInvariantProbe`); the
two runs without weight decay for Santurkar et al.'s loss variation, gradient predictiveness
and :math:`\\beta`-smoothness along the step (:class:`~eoslab.chapters.ch13_normalization_sharpness.smoothness.SmoothnessProbe`).
:func:`normalization_summary` gives the chapter's figures.
"""

from __future__ import annotations

import html
import math
import statistics
import threading

import altair as alt
import torch

from eoslab.chapters.ch13_normalization_sharpness.smoothness import SmoothnessProbe
from eoslab.core.data import load_dataset
from eoslab.core.losses import accuracy
from eoslab.core.train import fit
from eoslab.curvature.scale_invariance import ScaleInvariantMLP, ScaleInvariantProbe
from eoslab.ui.base import slider
from eoslab.ui.staged import StagedApp, divergence_text

__all__ = ["RUNS", "NormalizationSharpnessApp", "normalization_experiment",
           "normalization_layout", "normalization_summary"]

RUNS = {"bn_wd": "BatchNorm + weight decay", "bn": "BatchNorm, no weight decay",
        "plain": "no BatchNorm"}
_KEYS = ("step", "loss", "si_norm", "eff_lr", "sharpness", "spherical_sharpness",
         "loss_variation", "grad_predictiveness", "beta_smoothness")


def _clean(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _median(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def normalization_summary(runs: dict) -> dict:
    """The chapter's figures from the runs' histories (``run -> {"history", "test_acc"}``).

    ``sph_start`` / ``sph_end`` / ``sph_ratio`` per BatchNorm run (first and last spherical
    sharpness), the test accuracies, and for BN vs no BN the medians over the run of the
    three smoothness measures and their ratios ``*_ratio`` (no BN over BN; > 1: BN smoother).

    >>> h = lambda a, b: [{"spherical_sharpness": a, "grad_predictiveness": a},
    ...                   {"spherical_sharpness": b, "grad_predictiveness": b}]
    >>> s = normalization_summary({"bn_wd": {"history": h(100.0, 10.0), "test_acc": 0.9},
    ...                            "bn": {"history": h(100.0, 50.0), "test_acc": 0.8},
    ...                            "plain": {"history": h(20.0, 30.0), "test_acc": 0.7}})
    >>> s["bn_wd"]["sph_ratio"], s["bn"]["sph_ratio"], s["grad_predictiveness_ratio"]
    (0.1, 0.5, 0.3333333333333333)
    >>> s["grad_predictiveness_init_ratio"]
    0.2
    """
    out: dict = {}
    for name in ("bn_wd", "bn"):
        run = runs.get(name)
        if not run:
            continue
        sph = [r["spherical_sharpness"] for r in run["history"]
               if r.get("spherical_sharpness") is not None]
        out[name] = {"sph_start": sph[0] if sph else None, "sph_end": sph[-1] if sph else None,
                     "sph_ratio": sph[-1] / sph[0] if sph else None,
                     "test_acc": run.get("test_acc")}
    if "plain" in runs:
        out["plain"] = {"test_acc": runs["plain"].get("test_acc")}
    if "bn" in runs and "plain" in runs:
        for key in ("loss_variation", "grad_predictiveness", "beta_smoothness"):
            bn_rows = [r[key] for r in runs["bn"]["history"] if r.get(key) is not None]
            plain_rows = [r[key] for r in runs["plain"]["history"] if r.get(key) is not None]
            bn, plain = _median(runs["bn"]["history"], key), _median(runs["plain"]["history"], key)
            out[f"{key}_bn"], out[f"{key}_plain"] = bn, plain
            out[f"{key}_ratio"] = plain / bn if bn and plain is not None else None
            out[f"{key}_init_ratio"] = (plain_rows[0] / bn_rows[0]
                                        if bn_rows and plain_rows and bn_rows[0] else None)
    return out


def _one_run(values, data, name, lr, wd, emit_row, stop):
    model = ScaleInvariantMLP(math.prod(data.input_shape), data.n_outputs,
                              width=values["width"], depth=values["depth"],
                              norm="none" if name == "plain" else "batch",
                              out_scale=values["out_scale"], init=values["init"],
                              seed=values["model_seed"])
    model = model.to(device=data.x_train.device, dtype=data.x_train.dtype)
    probes = []
    if name != "plain":
        probes.append(ScaleInvariantProbe(values["sharpness_every"], sharpness=True))
    if name != "bn_wd":
        probes.append(SmoothnessProbe(values["smooth_every"], values["multiples"]))
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=wd if name == "bn_wd" else 0.0)
    run = fit(model, data, values["loss"], opt, steps=values["steps"],
              record_every=values["record_every"], probes=probes, callbacks=[emit_row],
              stop=stop, eval_test=False)
    test_acc = None
    if run.status == "finished" and data.x_test.shape[0] > 0:
        model.eval()  # BatchNorm with the running statistics gathered in training
        with torch.no_grad():
            test_acc = float(accuracy(model(data.x_test), data.y_test))
    return run, test_acc


def normalization_experiment(values, settings: dict, emit=None,
                             stop: threading.Event | None = None) -> dict:
    """The three runs at ``settings["lr"]`` (weight decay ``settings["wd"]`` for ``bn_wd``).

    Returns ``status``, ``lr``, ``wd``, ``runs`` (name -> ``history``, ``status``,
    ``test_acc``), ``summary`` (:func:`normalization_summary`), ``datasets`` and, if a run
    blew up, ``diverged`` (the others still ran).
    """
    lr, wd = float(settings["lr"]), float(settings["wd"])
    data = load_dataset(values["dataset"], n_train=values["n_train"], loss=values["loss"],
                        dtype=values.get("dtype", "float32"), device=values.get("device"))
    runs: dict = {}
    status, diverged = "finished", None

    def rows():
        return [{"run": RUNS[n], **r} for n, run in runs.items() for r in run["history"]]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets: one thread avoids OpenMP oversubscription stalls
    try:
        for i, name in enumerate(RUNS):
            runs[name] = {"history": [], "status": "running", "test_acc": None}

            def emit_row(row, name=name, i=i):
                clean = {k: _clean(row.get(k)) for k in _KEYS}
                if clean["beta_smoothness"] is not None:
                    clean["beta_edge"] = 2.0 / lr
                runs[name]["history"].append(clean)
                if emit is not None:
                    emit({"history": rows()}, i * values["steps"] + row["step"])

            run, test_acc = _one_run(values, data, name, lr, wd, emit_row, stop)
            runs[name].update(status=run.status, test_acc=test_acc)
            if run.status == "stopped":
                status = "stopped"
                break
            if run.diverged and diverged is None:
                step, value = run.diverged_at
                status = "diverged"
                diverged = {"step": step, "loss": value if math.isfinite(value) else 1e308,
                            "lr": lr, "stage": RUNS[name]}
    finally:
        torch.set_num_threads(threads)
    result = {"status": status, "lr": lr, "wd": wd, "runs": runs,
              "summary": normalization_summary(runs), "datasets": {"history": rows()}}
    if diverged:
        result["diverged"] = diverged
    return result


def normalization_layout():
    """Top: loss, spherical sharpness with 2/eta_eff, effective step.  Bottom: the three
    smoothness measures along the path, with and without BatchNorm.
    """
    base = alt.Chart(alt.Data(name="history"))
    color = alt.Color("run:N", title="run", scale=alt.Scale(
        domain=list(RUNS.values()), range=["#d62728", "#1f77b4", "#7f7f7f"]))

    def line(field, title, heading, log=True, points=False):
        return base.mark_line(point=points).encode(
            x=alt.X("step:Q", title="step"),
            y=alt.Y(f"{field}:Q", title=title,
                    scale=alt.Scale(type="log") if log else alt.Undefined),
            color=color).transform_filter(
            f"isValid(datum.{field}) && datum.{field} > 0").properties(
            title=heading, width=250, height=180)

    edge = base.transform_filter("isValid(datum.eff_lr) && isValid(datum.spherical_sharpness)"
                                 ).transform_calculate(edge="2 / datum.eff_lr").mark_line(
        strokeDash=[5, 3], opacity=0.7).encode(x="step:Q", y="edge:Q", color=color)
    sph = alt.layer(line("spherical_sharpness", "||w||^2 * lambda_max",
                         "spherical sharpness (dashed: 2 / eff. step)", points=True), edge)
    top = alt.hconcat(line("loss", "train loss (MSE)", "train loss"), sph,
                      line("eff_lr", "eta / ||w||^2", "effective step size"))
    bottom = alt.hconcat(
        line("grad_predictiveness", "max ||g(w) - g(w - s eta g)||",
             "gradient predictiveness (lower: smoother)"),
        alt.layer(line("beta_smoothness", "max ||dg|| / ||step||",
                       "effective beta-smoothness (black: 2/eta)"),
                  base.mark_line(color="black", strokeDash=[5, 3]).encode(
                      x="step:Q", y="beta_edge:Q").transform_filter("isValid(datum.beta_edge)")),
        line("loss_variation", "max - min of L along the step",
             "loss variation along the step"))
    return alt.vconcat(top, bottom).properties(datasets={"history": []})


class NormalizationSharpnessApp(StagedApp):
    """Step size (``eoslab-lr-slider``) and weight decay (``eoslab-wd-slider``); Run/Stop; chart."""

    CHAPTER = "13"
    KIND = "ch13_normalization_sharpness"
    LR_RANGE = (0.01, 10.0, 0.01)

    def make_sliders(self) -> dict:
        return {"wd": slider("weight decay lambda", self.preset["wd"], 0.0, 0.05, 0.001,
                             "eoslab-wd-slider", continuous=False)}

    def layout(self):
        return normalization_layout()

    def total_work(self, settings: dict) -> int:
        return self.preset["steps"] * len(RUNS)

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        return normalization_experiment(self.preset.values, settings, emit, stop)

    def _status(self, result: dict) -> str:
        if result.get("status") != "diverged":
            return super()._status(result)
        fine = [RUNS[n] for n, r in result["runs"].items() if r["status"] == "finished"]
        text = divergence_text(result)
        if fine:
            text += f"; at the same eta these trained: {', '.join(fine)}"
        return html.escape(text) + (" (from the store)" if result.get("from_store") else "")

    def describe(self, result: dict) -> str:
        s = result["summary"]
        parts = []
        wd, bn = s.get("bn_wd"), s.get("bn")
        if wd and bn and wd["sph_end"] is not None and bn["sph_end"] is not None:
            parts.append(
                f"spherical sharpness: with weight decay {wd['sph_start']:.3g} -> "
                f"{wd['sph_end']:.3g} ({1 / wd['sph_ratio']:.3g}x lower), without "
                f"{bn['sph_start']:.3g} -> {bn['sph_end']:.3g}; test accuracy "
                f"{wd['test_acc']:.3f} vs {bn['test_acc']:.3f}")
        if s.get("grad_predictiveness_init_ratio") is not None:
            parts.append(
                "without BatchNorm, at initialisation the gradient change along the step is "
                f"{s['grad_predictiveness_init_ratio']:.3g}x, the loss variation "
                f"{s['loss_variation_init_ratio']:.3g}x and the beta-smoothness "
                f"{s['beta_smoothness_init_ratio']:.3g}x those with BatchNorm; over the whole "
                f"run the medians are {s['grad_predictiveness_ratio']:.3g}x, "
                f"{s['loss_variation_ratio']:.3g}x and {s['beta_smoothness_ratio']:.3g}x, with "
                f"median beta-smoothness {s['beta_smoothness_plain']:.3g} (no BN) and "
                f"{s['beta_smoothness_bn']:.3g} (BN) against 2/eta = {2 / result['lr']:.3g}")
        return "<br>".join(html.escape(p) for p in parts) or "no probes recorded"
