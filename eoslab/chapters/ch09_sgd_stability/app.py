"""Chapter 09's app: which minima SGD can stay at, and its escape from the others.

Wu and Su (ICML 2023, arXiv 2305.17490); Wu, Ma, E (NeurIPS 2018).  GD finds an
interpolating minimum of the preset's regression net (once per preset).  At that minimum
:func:`eoslab.chapters.ch09_sgd_stability.sgd_noise.stability_report` gives, for every batch size of the preset's grid
at the slider's step size, GD's ratio :math:`\\eta\\lambda_{\\max}/2`, the trace ratio
:math:`\\eta c_B \\mathrm{Tr}H/2`, the non-uniformity ratio and the exact mean-square growth
factor of linearised SGD.  Then SGD with the slider's batch size (and, for reference,
GD at the same step) starts *at* that minimum through :func:`eoslab.core.train.fit`: where the
SGD criterion fails although GD's holds, SGD leaves the minimum and, if it does not blow
up, settles in a flatter one.  :func:`escape_summary` gives the chapter's figures.
"""

from __future__ import annotations

import copy
import functools
import html
import math
import threading

import altair as alt
import ipywidgets as widgets
import torch

from eoslab.chapters.ch09_sgd_stability.sgd_noise import (
    noise_alignment,
    per_sample_gradients,
    per_sample_jacobian,
    stability_report,
)
from eoslab.core.experiment import build_problem
from eoslab.core.train import fit
from eoslab.curvature.objective import Objective
from eoslab.ui.staged import StagedApp

__all__ = ["SgdStabilityApp", "escape_summary", "gd_minimum", "minimum_alignment",
           "sgd_stability_experiment"]

_MIN_KEYS = ("dataset", "n_train", "model", "width", "depth", "loss", "dtype", "model_seed",
             "lr_gd", "gd_steps")
_RATIOS = (("gd_ratio", "GD: eta lambda_max / 2"), ("trace_ratio", "trace: eta c_B Tr H / 2"),
           ("wme_ratio", "non-uniformity: eta s sqrt(c_B)"),
           ("ms_rate", "exact: mean-square growth per step"))


def _problem(values):
    return build_problem(values, "float64")


@functools.lru_cache(maxsize=4)
def _minimum_cached(items: tuple):
    values = dict(items)
    data, model = _problem(values)
    run = fit(model, data, values["loss"], torch.optim.SGD(model.parameters(),
                                                             lr=values["lr_gd"]),
              steps=int(values["gd_steps"]), record_every=max(1, values["gd_steps"] // 20),
              eval_test=False)
    if run.status != "finished":
        raise RuntimeError(f"GD did not reach a minimum ({run.summary()}); lower lr_gd")
    start_loss = run.history[0]["loss"]
    return copy.deepcopy(model.state_dict()), start_loss, run.history[-1]["loss"]


def gd_minimum(values):
    """``(state_dict, initial_loss, final_loss)`` of full-batch GD at ``lr_gd`` for
    ``gd_steps`` from the preset's initialisation, cached per setting.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _minimum_cached(tuple((k, values.get(k)) for k in _MIN_KEYS))
    finally:
        torch.set_num_threads(threads)


def escape_summary(sgd_rows: list[dict], gd_rows: list[dict]) -> dict:
    """``start`` loss (at the minimum), ``sgd_peak`` / ``gd_peak`` (largest loss of each run
    over the start: the escape factor), ``sgd_end`` and ``escaped`` (peak over 100x start).

    >>> s = escape_summary([{"loss": 1e-9}, {"loss": 1e-3}, {"loss": 1e-6}],
    ...                    [{"loss": 1e-9}, {"loss": 5e-10}])
    >>> s["escaped"], round(s["sgd_peak"]), s["gd_peak"]
    (True, 1000000, 1.0)
    """
    start = sgd_rows[0]["loss"]
    peak = max(r["loss"] for r in sgd_rows) / start
    gd_peak = max(r["loss"] for r in gd_rows) / gd_rows[0]["loss"] if gd_rows else None
    return {"start": start, "sgd_peak": peak, "gd_peak": gd_peak,
            "sgd_end": sgd_rows[-1]["loss"], "escaped": peak > 100.0}


def _jacobian(model, data, loss):
    return per_sample_jacobian(Objective(model, loss, data.x_train, data.y_train))


def minimum_alignment(model, data, loss, jac) -> float:
    """Alignment :math:`\\mu` of the one-example SGD noise with the Hessian at the model's
    point (Gauss-Newton :math:`H = J^\\top J/n`, exact at an interpolating minimum).
    """
    objective = Objective(model, loss, data.x_train, data.y_train)
    rows = jac.reshape(jac.shape[0], -1)
    hessian = rows.T @ rows / jac.shape[0]
    value = float(objective(objective.params()))
    return noise_alignment(per_sample_gradients(objective), hessian, value)


def sgd_stability_experiment(values, lr: float, batch_size: int, emit=None,
                             stop: threading.Event | None = None) -> dict:
    """Stability at the GD minimum for the batch grid, then SGD and GD started there.

    Returns ``status``, ``grid`` (one report per batch size), ``at_min`` and ``at_end``
    (reports for the chosen batch size at the minimum and where SGD ends), ``sgd``/``gd``
    (history rows), ``summary``, ``datasets`` and ``diverged`` when a run blew up.
    """
    n = int(values["n_train"])
    batch_size = int(batch_size)
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size={batch_size} is not allowed; use an integer in [1, {n}]")
    state, init_loss, min_loss = gd_minimum(values)
    data, model = _problem(values)
    model.load_state_dict(state)
    jac = _jacobian(model, data, values["loss"])
    grid = [stability_report(jac, lr, int(b)) for b in sorted(set(values["batch_grid"]) |
                                                                 {batch_size})]
    at_min = next(r for r in grid if r["batch_size"] == batch_size)
    datasets = {"ratios": [{"batch_size": r["batch_size"], "ratio": r[key], "criterion": name}
                           for r in grid for key, name in _RATIOS],
                "chosen": [{"batch_size": batch_size}], "loss": [], "curvature": []}
    result = {"status": "finished", "grid": grid, "at_min": at_min, "lr": lr,
              "batch_size": batch_size, "min_loss": min_loss,
              "alignment": minimum_alignment(model, data, values["loss"], jac)}
    if emit is not None:
        emit(dict(datasets), 0)
    # divergence: loss 1000x above the *initial* loss of the problem, not of the minimum
    factor = 1e3 * init_loss / max(min_loss, 1e-300)
    runs = {}
    done = 0
    for name, b in ((f"SGD, B = {batch_size}", batch_size), ("GD (B = n)", None)):
        model.load_state_dict(state)
        rows: list[dict] = []

        def on_row(row, rows=rows, name=name, offset=done):
            rows.append({"step": row["step"], "loss": row["loss"]})
            datasets["loss"].append({"step": row["step"], "loss": row["loss"], "run": name})
            if emit is not None:
                emit({"loss": list(datasets["loss"])}, offset + row["step"])

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            run = fit(model, data, values["loss"], torch.optim.SGD(model.parameters(), lr=lr),
                      steps=int(values["steps"]), batch_size=b,
                      record_every=int(values["record_every"]), callbacks=[on_row], stop=stop,
                      divergence_factor=factor, seed=int(values.get("sgd_seed", 0)),
                      eval_test=False)
        finally:
            torch.set_num_threads(threads)
        done += int(values["steps"])
        runs[name] = rows
        if run.status == "stopped":
            result["status"] = "stopped"
            return result
        if run.diverged and "diverged" not in result:
            step, value = run.diverged_at
            result["status"] = "diverged"
            result["diverged"] = {"step": step, "loss": value if math.isfinite(value) else 1e308,
                                  "lr": lr, "stage": name}
        if b is not None and run.status == "finished":
            result["at_end"] = stability_report(_jacobian(model, data, values["loss"]), lr,
                                                batch_size)
    sgd_rows, gd_rows = runs[f"SGD, B = {batch_size}"], runs["GD (B = n)"]
    result["sgd"], result["gd"] = sgd_rows, gd_rows
    result["summary"] = escape_summary(sgd_rows, gd_rows) if sgd_rows else None
    for label, rep in (("GD's minimum", at_min), ("where SGD ends", result.get("at_end"))):
        if rep is not None:
            datasets["curvature"] += [{"point": label, "criterion": name, "ratio": rep[key]}
                                      for key, name in _RATIOS]
    result["datasets"] = datasets
    return result


def sgd_stability_layout():
    """Stability ratios vs batch size | loss of SGD and GD from the minimum | before/after."""
    crit = alt.Color("criterion:N", title="criterion (<= 1: SGD may stay)")
    one = alt.Chart(alt.Data(values=[{"v": 1.0}])).mark_rule(color="black",
                                                            strokeDash=[6, 4]).encode(y="v:Q")
    ratios = alt.Chart(alt.Data(name="ratios")).mark_line(point=True).encode(
        x=alt.X("batch_size:Q", title="batch size B", scale=alt.Scale(type="log", base=2)),
        y=alt.Y("ratio:Q", title="ratio at GD's minimum", scale=alt.Scale(type="log")),
        color=crit).transform_filter("datum.ratio > 0")
    chosen = alt.Chart(alt.Data(name="chosen")).mark_rule(color="#888").encode(x="batch_size:Q")
    left = alt.layer(ratios, one, chosen).properties(
        title="which batch sizes can stay at GD's minimum", width=300, height=230)
    loss = alt.Chart(alt.Data(name="loss")).mark_line().encode(
        x=alt.X("step:Q", title="step from the minimum"),
        y=alt.Y("loss:Q", title="train loss", scale=alt.Scale(type="log")),
        color=alt.Color("run:N", title="run")).transform_filter("datum.loss > 0").properties(
        title="started at GD's minimum: stay or escape", width=300, height=230)
    curv = alt.Chart(alt.Data(name="curvature")).mark_point(filled=True, size=90).encode(
        x=alt.X("criterion:N", title=None, axis=alt.Axis(labelAngle=-30, labelLimit=160)),
        y=alt.Y("ratio:Q", title="ratio at the chosen B", scale=alt.Scale(type="log")),
        shape=alt.Shape("point:N", title="point"), color=alt.Color("point:N", title="point"))
    right = alt.layer(curv, one).properties(title="the minimum SGD leaves vs the one it finds",
                                            width=220, height=230)
    return alt.hconcat(left, loss, right).resolve_scale(color="independent").properties(
        datasets={"ratios": [], "chosen": [], "loss": [], "curvature": []})


class SgdStabilityApp(StagedApp):
    """Step size (``eoslab-lr-slider``) and batch size (``eoslab-batch-slider``) of the SGD
    started at GD's minimum; Run/Stop; three panels.
    """

    CHAPTER = "09"
    KIND = "ch09_sgd_stability"
    LR_RANGE = (0.01, 4.0, 0.01)

    def make_sliders(self) -> dict:
        batch = widgets.IntSlider(value=self.preset["batch_size"], min=1,
                                  max=self.preset["n_train"], description="batch size B",
                                  continuous_update=False, layout=widgets.Layout(width="480px"),
                                  style={"description_width": "160px"})
        batch.add_class("eoslab-batch-slider")
        return {"batch_size": batch}

    def _on_preset(self, change) -> None:
        batch = self.sliders["batch_size"]
        batch.unobserve(self._on_setting, names="value")
        batch.max = max(batch.max, int(self.preset_values(change["new"])["n_train"]))
        batch.observe(self._on_setting, names="value")
        super()._on_preset(change)
        batch.unobserve(self._on_setting, names="value")
        batch.max = int(self.preset["n_train"])
        batch.observe(self._on_setting, names="value")

    def preset_values(self, name: str):
        from eoslab.chapters.presets import get_preset

        return get_preset(self.CHAPTER, name)

    def layout(self):
        return sgd_stability_layout()

    def total_work(self, settings: dict) -> int:
        return 2 * int(self.preset["steps"])

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        return sgd_stability_experiment(self.preset.values, settings["lr"],
                                        int(settings["batch_size"]), emit, stop)

    def describe(self, result: dict) -> str:
        r, s = result["at_min"], result["summary"]
        lr, b = result["lr"], result["batch_size"]
        text = (f"At GD's minimum: eta lambda_max / 2 = {r['gd_ratio']:.2f} (GD "
                f"{'can' if r['gd_ratio'] <= 1 else 'cannot'} stay); with B = {b}, "
                f"eta c_B Tr H / 2 = {r['trace_ratio']:.2f} and the exact mean-square growth "
                f"per step is {r['ms_rate']:.3f} (SGD "
                f"{'can' if r['ms_rate'] <= 1 + 1e-9 else 'cannot'} stay). ")
        if s["escaped"]:
            text += f"SGD left the minimum: its loss rose {s['sgd_peak']:.2g}x"
            end = result.get("at_end")
            if end is not None:
                text += (f", and it ends at loss {s['sgd_end']:.2g} where Tr H = "
                         f"{end['trace']:.3g} (was {r['trace']:.3g}), growth "
                         f"{end['ms_rate']:.3f}")
        else:
            text += (f"SGD stayed: its loss rose at most {s['sgd_peak']:.2g}x and ends at "
                     f"{s['sgd_end']:.2g}")
        text += (f". The one-example noise at GD's minimum is aligned with the Hessian: mu = "
                 f"{result['alignment']:.2f}")
        if s["gd_peak"] is not None:
            text += f"; GD at eta = {lr:g} from the same minimum: at most {s['gd_peak']:.2g}x"
        return html.escape(text)
