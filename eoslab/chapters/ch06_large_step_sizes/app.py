"""Chapter 06's app: large step sizes escape sharp local minima; small ones with noise do not.

The pipeline (:func:`escape_experiment`) runs in the background through
:class:`~eoslab.ui.staged.StagedApp`:

1. noisy GD on :class:`~eoslab.chapters.ch06_large_step_sizes.sharp_valleys.SharpValleys` from a few starts at the slider's
   step size, without noise and with the slider's noise (radius against step);
2. the whole (step size x noise) grid of :func:`~eoslab.chapters.ch06_large_step_sizes.sharp_valleys.escape_grid`,
   the heatmap filling in as the runs move;
3. a small network (:func:`eoslab.core.sweep.sweep`, full-batch GD on digits at a few step sizes)
   and the sharpness of the point each step size ends at.
"""

from __future__ import annotations

import html
import math
import threading

import altair as alt
import numpy as np
import torch

from eoslab.chapters.ch06_large_step_sizes.sharp_valleys import (
    SharpValleys,
    escape_grid,
    noisy_gd,
    start_points,
)
from eoslab.core.config import TrainConfig
from eoslab.core.devices import resolve_device
from eoslab.core.sweep import sweep
from eoslab.speed.threads import single_thread
from eoslab.ui.base import slider
from eoslab.ui.plots import HEIGHT, WIDTH, rows
from eoslab.ui.staged import StagedApp

__all__ = ["LargeStepSizesApp", "escape_experiment", "escape_layout", "matched_sharpness",
           "valleys_for"]


def valleys_for(values) -> SharpValleys:
    """The landscape of a preset's values."""
    return SharpValleys(dim=int(values["dim"]), curvature=float(values["curvature"]),
                        radii=tuple(values["radii"]), depth=float(values["depth"]),
                        width=float(values["width"]))


def grid_lrs(values) -> list[float]:
    """The grid's step sizes: ``n_lrs`` log-spaced from ``lr_min`` to ``lr_max``."""
    return [float(v) for v in np.geomspace(values["lr_min"], values["lr_max"], values["n_lrs"])]


def escape_layout():
    """Heatmap | trajectories (radius vs step) / the radial profile | the network."""
    heat = alt.Chart(alt.Data(name="grid")).mark_rect().encode(
        x=alt.X("eta:O", title="step size eta", sort=alt.EncodingSortField("lr")),
        y=alt.Y("sigma:O", title="gradient noise sigma",
                sort=alt.EncodingSortField("noise", order="descending")),
        color=alt.Color("reached:Q", title="reached global",
                        scale=alt.Scale(domain=[0, 1], scheme="viridis")),
        tooltip=["lr:Q", "noise:Q", "reached:Q", "diverged:Q"]).properties(
        width=WIDTH + 60, height=HEIGHT, title="fraction of runs reaching the global minimum")
    edge = alt.Chart(alt.Data(name="rings")).mark_rule(color="#bbb", strokeDash=[4, 3]).encode(
        y=alt.Y("radius:Q"))
    paths = alt.Chart(alt.Data(name="paths")).mark_line(clip=True, strokeWidth=1.2).encode(
        x=alt.X("step:Q"), y=alt.Y("radius:Q", title="distance from the global minimum |x|",
                                   scale=alt.Scale(domain=[0, 8], clamp=True)),
        color=alt.Color("kind:N", title="run"), detail="run:N")
    traj = alt.layer(edge, paths).properties(
        width=WIDTH, height=HEIGHT, title="runs at the slider's eta (dashed: the sharp rings)")
    profile = alt.Chart(alt.Data(name="profile")).mark_line(color="black").encode(
        x=alt.X("radius:Q", title="|x|"), y=alt.Y("f:Q", title="f along a ray")).properties(
        width=WIDTH, height=HEIGHT, title="the landscape along any ray from the minimum")
    eta = alt.Color("eta:N", title="digits net")
    net_paths = alt.Chart(alt.Data(name="net")).mark_line(point=True).encode(
        x=alt.X("loss:Q", title="train loss (training runs right to left)",
                scale=alt.Scale(type="log", reverse=True)),
        y=alt.Y("sharpness:Q", title="top Hessian eigenvalue"),
        color=eta, order="step:Q", tooltip=["eta:N", "step:Q", "loss:Q", "sharpness:Q"])
    caps = alt.Chart(alt.Data(name="net")).mark_rule(strokeDash=[5, 4]).encode(
        y=alt.Y("two_over_eta:Q"), color=eta)
    net = alt.layer(net_paths, caps).properties(
        width=WIDTH, height=HEIGHT,
        title="digits net: sharpness as the loss falls (dashed: 2/eta)")
    return alt.vconcat(alt.hconcat(heat, traj), alt.hconcat(profile, net)).resolve_scale(
        color="independent")


def _fmt(v: float) -> str:
    return f"{v:.2g}" if v < 10 else f"{v:.0f}"


def _grid_rows(grid) -> list[dict]:
    out = []
    for row in grid.rows():
        out.append({**row, "eta": _fmt(row["lr"]), "sigma": _fmt(row["noise"])})
    return out


def _profile_rows(fn: SharpValleys, start: float) -> list[dict]:
    r = torch.linspace(0, max(start, fn.radii[-1]) + 0.5, 1200, dtype=torch.float64)
    return rows({"radius": r.numpy(), "f": fn.profile(r).numpy()})


def escape_experiment(values, settings: dict, emit=None, stop: threading.Event | None = None,
                      ) -> dict:
    """The chapter's three stages (see the module docs); returns a JSON-ready result.

    ``emit(datasets, done)`` receives partial datasets; the result has ``status``,
    ``grid`` (rows), ``net`` (rows), ``paths`` (rows) and the landscape's figures
    ``ring_sharpness`` and ``success_level``.
    """
    emit = emit or (lambda *_: None)
    fn = valleys_for(values)
    lr, noise = float(settings["lr"]), float(settings["noise"])
    rings = [{"radius": r} for r in fn.radii]
    out = {"status": "finished", "lr": lr, "noise": noise,
           "ring_sharpness": fn.ring_sharpness(), "success_level": fn.success_level(),
           "profile": _profile_rows(fn, values["start_radius"]), "rings": rings}
    steps, quiet = int(values["steps"]), int(values["quiet"])
    device = resolve_device(values.get("device", "cpu"))
    done = 0
    # 1. trajectories at the slider's step size
    x0 = start_points(fn, int(values["traj_seeds"]), values["start_radius"], seed=7,
                      device=device)
    traj = noisy_gd(fn, x0, [lr], [0.0, noise], steps, quiet=quiet, seed=11,
                    record_every=max(steps // 150, 1), stop=stop)
    paths = []
    for j, kind in enumerate(("GD", f"GD + noise sigma={noise:.3g}")):
        for s in range(x0.shape[0]):
            radius = traj["radius"][:, 0, j, s].tolist()
            alive_until = int(traj["diverged_at"][0, j, s])
            for t, r in zip(traj["history_steps"], radius):
                if alive_until >= 0 and t > alive_until:
                    break
                paths.append({"step": t, "radius": r if math.isfinite(r) else None,
                              "kind": kind, "run": f"{kind} {s}"})
    out["paths"] = paths
    done += 1
    emit({"paths": paths, "rings": rings, "profile": out["profile"]}, done)
    if stop is not None and stop.is_set():
        return {**out, "status": "stopped", "datasets": {}}
    dead = traj["diverged_at"][0, 0]
    if bool((dead >= 0).all()):
        at = int(dead.min())
        out.update(status="diverged", diverged={"step": at, "loss": float("inf"), "lr": lr,
                                                "stage": "GD on the valleys"})
        out["datasets"] = _datasets(out)
        return out
    # 2. the (eta x sigma) grid
    lrs = grid_lrs(values)
    every = max(steps // 10, 1)

    def progress(t, partial):
        emit({"grid": _grid_rows(partial)}, done + t // every)

    grid = escape_grid(fn, lrs, values["noises"], int(values["seeds"]), steps, quiet,
                       values["start_radius"], seed=0, device=device, stop=stop,
                       progress=progress,
                       progress_every=every)
    out["grid"] = _grid_rows(grid)
    done += 11
    emit({"grid": out["grid"]}, done)
    if stop is not None and stop.is_set():
        return {**out, "status": "stopped", "datasets": {}}
    # 3. the small network
    out["net"] = _network(values, stop, lambda rows_: emit({"net": rows_}, done))
    if stop is not None and stop.is_set():
        return {**out, "status": "stopped", "datasets": {}}
    out["datasets"] = _datasets(out)
    return out


def _network(values, stop, emit) -> list[dict]:
    steps = int(values["net_steps"])
    every = max(steps // 12, 1)
    cfg = TrainConfig(dataset=values["net_dataset"], n_train=int(values["net_n_train"]),
                      model=values["net_model"], width=int(values["net_width"]),
                      depth=int(values["net_depth"]), loss=values["net_loss"],
                      steps=steps, record_every=every, sharpness_every=every,
                      device=str(resolve_device(values.get("device", "cpu"))))
    res = sweep(cfg, lrs=list(values["net_lrs"]), store=False, stop=stop)
    out = []
    for c, run in res:
        if run.status != "finished":
            continue
        for h in run.history:
            if h.get("sharpness") is not None:
                out.append({"lr": c.lr, "eta": f"eta = {c.lr:.3g}", "step": int(h["step"]),
                            "loss": float(h["loss"]), "sharpness": float(h["sharpness"]),
                            "two_over_eta": 2.0 / c.lr})
    emit(out)
    return out


def matched_sharpness(net_rows: list[dict]) -> dict:
    """Sharpness of each step size's run where its train loss first falls to the level
    every run reaches (the largest final loss): ``{lr: sharpness}`` and that ``level``.

    >>> rows_ = [{"lr": 0.1, "step": 0, "loss": 1.0, "sharpness": 2.0},
    ...          {"lr": 0.1, "step": 9, "loss": 0.5, "sharpness": 4.0},
    ...          {"lr": 0.8, "step": 0, "loss": 1.0, "sharpness": 2.0},
    ...          {"lr": 0.8, "step": 9, "loss": 0.2, "sharpness": 2.5}]
    >>> matched_sharpness(rows_)
    {'level': 0.5, 'sharpness': {0.1: 4.0, 0.8: 2.5}}
    """
    by_lr: dict = {}
    for r in sorted(net_rows, key=lambda r: (r["lr"], r["step"])):
        by_lr.setdefault(r["lr"], []).append(r)
    if not by_lr:
        return {"level": float("nan"), "sharpness": {}}
    level = max(rs[-1]["loss"] for rs in by_lr.values())
    found = {lr: next(r["sharpness"] for r in rs if r["loss"] <= level)
             for lr, rs in by_lr.items()}
    return {"level": level, "sharpness": found}


def _datasets(result: dict) -> dict:
    return {"grid": result.get("grid", []), "paths": result.get("paths", []),
            "rings": result.get("rings", []), "profile": result.get("profile", []),
            "net": result.get("net", [])}


def summary(result: dict, edge_lr: float) -> dict:
    """The chapter's figures: best reach below the ring edge, worst above it (GD, no noise)."""
    small = [r["reached"] for r in result["grid"] if r["lr"] < edge_lr]
    large = [r["reached"] for r in result["grid"]
             if 2 * edge_lr < r["lr"] < 0.75 * 2 and r["noise"] == 0]
    return {"small_eta_best": max(small) if small else float("nan"),
            "large_eta_worst": min(large) if large else float("nan")}


class LargeStepSizesApp(StagedApp):
    """Step size and noise sliders; the escape heatmap, trajectories and the digits net.

    CSS classes: those of :class:`StagedApp` plus ``eoslab-noise-slider``.
    """

    CHAPTER = "06"
    KIND = "ch06_large_step_sizes"
    LR_RANGE = (0.001, 2.5, 0.001)

    def make_sliders(self) -> dict:
        self.noise = slider("gradient noise sigma", self.preset["noise"], 0.0, 100.0, 0.1,
                            "eoslab-noise-slider", continuous=False)
        return {"noise": self.noise}

    def layout(self):
        return escape_layout()

    def total_work(self, settings: dict) -> int:
        return 13

    def compute(self, settings: dict, emit, stop: threading.Event) -> dict:
        with single_thread():  # small tensors: one intra-op thread is faster (eoslab.speed.threads)
            return escape_experiment(self.preset.values, settings, emit, stop)

    def describe(self, result: dict) -> str:
        edge = 2.0 / result["ring_sharpness"]
        s = summary(result, edge)
        net = result.get("net", [])
        text = (f"rings are stable only for eta < 2/{result['ring_sharpness']:.0f} = "
                f"{edge:.2g}. Below that, at most {s['small_eta_best']:.0%} of runs reach the "
                f"global minimum at any noise level; plain GD with {2 * edge:.2g} < eta < 1.5 "
                f"reaches it in at least {s['large_eta_worst']:.0%}.")
        match = matched_sharpness(net)
        if len(match["sharpness"]) >= 2:
            (lo, s_lo), (hi, s_hi) = min(match["sharpness"].items()), max(
                match["sharpness"].items())
            text += (f" Digits net, at train loss {match['level']:.2g}: sharpness "
                     f"{s_lo:.3g} with eta = {lo:.3g}, {s_hi:.3g} with eta = {hi:.3g} "
                     f"(2/eta = {2 / hi:.3g}).")
        return html.escape(text)

