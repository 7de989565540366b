"""Chapter 06's experiment: large step sizes escape sharp minima, small noisy ones do not.

Mohtashami, Jaggi & Stich, *Special Properties of Gradient Descent with Large Learning
Rates*, ICML 2023, arXiv 2205.15142.

:func:`experiment` runs three stages on a
:class:`~eoslab.chapters.ch06_large_step_sizes.meta.LargeStepSizesPreset`:

1. noisy GD on :class:`~eoslab.chapters.ch06_large_step_sizes.sharp_valleys.SharpValleys`
   from a few starts at the setting's step size, without noise and with the setting's
   noise (radius against step);
2. the whole (step size x noise) grid of
   :func:`~eoslab.chapters.ch06_large_step_sizes.sharp_valleys.escape_grid`, the heatmap
   filling in as the runs move;
3. a small network (:func:`eoslab.core.sweep.sweep`, full-batch GD of the preset's
   ``net`` at each of ``net_gd.lrs``) and the sharpness along each run, plus the noise arm
   (:func:`~eoslab.chapters.ch06_large_step_sizes.noisy_net.noisy_run`: the smallest step
   size with isotropic gradient noise ``net_gd.noise``).

GD can rest in a ring only for :math:`\\eta < 2/\\lambda_{\\text{ring}}`
(``ring_sharpness``), and at the global minimum only for :math:`\\eta < 2/\\mu`: past that
every trajectory of stage 1 diverges and the result says so.

Usage (tests/chapters/test_ch06_large_step_sizes.py runs it)::

    from eoslab.chapters.presets import get_preset
    result = experiment(get_preset("06", "quick"), {"lr": 0.3, "noise": 3.0})
    result["status"], sorted(result["datasets"])
    # ('finished', ['grid', 'net', 'paths', 'profile', 'rings'])
"""

from __future__ import annotations

import math
import threading

import numpy as np
import torch

from eoslab.chapters.ch06_large_step_sizes.meta import LargeStepSizesPreset
from eoslab.chapters.ch06_large_step_sizes.noisy_net import noisy_run
from eoslab.chapters.ch06_large_step_sizes.sharp_valleys import (
    SharpValleys,
    escape_grid,
    noisy_gd,
    start_points,
)
from eoslab.core.devices import resolve_device
from eoslab.core.sweep import sweep
from eoslab.speed.threads import single_thread
from eoslab.ui.plots import rows

__all__ = ["experiment", "grid_lrs", "matched_sharpness", "summary", "valleys_for"]

GRID_WORK = 11  # progress units of stage 2 (ten partial grids and the final one)
TOTAL_WORK = 1 + GRID_WORK + 1


def valleys_for(preset: LargeStepSizesPreset) -> SharpValleys:
    """The landscape of a preset."""
    return SharpValleys(dim=int(preset.dim), curvature=float(preset.curvature),
                        radii=tuple(preset.radii), depth=float(preset.depth),
                        width=float(preset.width))


def grid_lrs(preset: LargeStepSizesPreset) -> list[float]:
    """The grid's step sizes: ``n_lrs`` log-spaced from ``lr_min`` to ``lr_max``."""
    return [float(v) for v in np.geomspace(preset.lr_min, preset.lr_max, preset.n_lrs)]


def _fmt(v: float) -> str:
    return f"{v:.2g}" if v < 10 else f"{v:.0f}"


def _grid_rows(grid) -> list[dict]:
    return [{**row, "eta": _fmt(row["lr"]), "sigma": _fmt(row["noise"])} for row in grid.rows()]


def _profile_rows(fn: SharpValleys, start: float) -> list[dict]:
    r = torch.linspace(0, max(start, fn.radii[-1]) + 0.5, 1200, dtype=torch.float64)
    return rows({"radius": r.numpy(), "f": fn.profile(r).numpy()})


def _stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def experiment(preset: LargeStepSizesPreset, settings: dict, *, emit=None,
               stop: threading.Event | None = None) -> dict:
    """The chapter's three stages (see the module docs); returns a JSON-ready result.

    ``settings`` holds ``lr`` and ``noise`` (the trajectories drawn); ``emit(datasets,
    done)`` receives partial datasets (``done`` counts up to 13). The result has
    ``status``, ``datasets``, ``grid``, ``net`` and ``paths`` (rows) and the landscape's
    figures ``ring_sharpness`` and ``success_level``.  When every drawn run at ``lr``
    diverges, the status is ``"diverged"`` with ``diverged`` naming the step; the grid and
    the net, which do not depend on ``lr``, are still computed and drawn.
    """
    with single_thread():  # small tensors: one intra-op thread (eoslab.speed.threads)
        return _run(preset, settings, emit or (lambda *_: None), stop)


def _run(preset: LargeStepSizesPreset, settings: dict, emit, stop) -> dict:
    fn = valleys_for(preset)
    lr, noise = float(settings["lr"]), float(settings["noise"])
    device = resolve_device(preset.device)
    out = {"status": "finished", "lr": lr, "noise": noise,
           "ring_sharpness": fn.ring_sharpness(), "success_level": fn.success_level(),
           "profile": _profile_rows(fn, preset.start_radius),
           "rings": [{"radius": r} for r in fn.radii]}
    out["paths"], dead = _trajectories(fn, preset, lr, noise, device, stop)
    emit({"paths": out["paths"], "rings": out["rings"], "profile": out["profile"]}, 1)
    if _stopped(stop):
        return {**out, "status": "stopped", "datasets": {}}
    if bool((dead >= 0).all()):  # the grid and the net do not depend on lr: they still run
        out.update(status="diverged", diverged={"step": int(dead.min()), "loss": 1e308,
                                                "lr": lr, "stage": "GD on the valleys"})
    out["grid"] = _grid(fn, preset, device, stop, emit)
    emit({"grid": out["grid"]}, 1 + GRID_WORK)
    if _stopped(stop):
        return {**out, "status": "stopped", "datasets": {}}
    out["net"] = _network(preset, stop, lambda rows_: emit({"net": rows_}, 1 + GRID_WORK))
    if _stopped(stop):
        return {**out, "status": "stopped", "datasets": {}}
    out["datasets"] = _datasets(out)
    return out


def _trajectories(fn: SharpValleys, preset: LargeStepSizesPreset, lr: float, noise: float,
                  device, stop) -> tuple[list[dict], torch.Tensor]:
    """Stage 1: radius against step of GD and noisy GD at ``lr``.

    Also returns the step at which each plain-GD run diverged (-1: never).
    """
    steps = int(preset.steps)
    x0 = start_points(fn, int(preset.traj_seeds), preset.start_radius, seed=7, device=device)
    traj = noisy_gd(fn, x0, [lr], [0.0, noise], steps, quiet=int(preset.quiet), seed=11,
                    record_every=max(steps // 150, 1), stop=stop)
    paths = []
    for j, kind in enumerate(("GD", f"GD + noise σ = {noise:.3g}")):
        for s in range(x0.shape[0]):
            alive_until = int(traj["diverged_at"][0, j, s])
            for t, r in zip(traj["history_steps"], traj["radius"][:, 0, j, s].tolist()):
                if alive_until >= 0 and t > alive_until:
                    break
                paths.append({"step": t, "radius": r if math.isfinite(r) else None,
                              "kind": kind, "run": f"{kind} {s}"})
    return paths, traj["diverged_at"][0, 0]


def _grid(fn: SharpValleys, preset: LargeStepSizesPreset, device, stop, emit) -> list[dict]:
    """Stage 2: the (eta x sigma) grid, streamed ten times as the runs move."""
    steps = int(preset.steps)
    every = max(steps // 10, 1)

    def progress(t, partial):
        emit({"grid": _grid_rows(partial)}, 1 + t // every)

    grid = escape_grid(fn, grid_lrs(preset), preset.noises, int(preset.seeds), steps,
                       int(preset.quiet), preset.start_radius, seed=0, device=device,
                       stop=stop, progress=progress, progress_every=every)
    return _grid_rows(grid)


def _network(preset: LargeStepSizesPreset, stop, emit) -> list[dict]:
    """Stage 3: the small net at each of ``net_gd.lrs``, with its sharpness along the way."""
    gd = preset.net_gd
    every = max(int(gd.steps) // 12, 1)
    cfg = preset.net.train_config(steps=int(gd.steps), record_every=every,
                                  sharpness_every=every)
    res = sweep(cfg, lrs=list(gd.lrs), store=False, stop=stop)
    out: list[dict] = []
    for c, run in res:
        if run.status != "finished":
            continue
        for h in run.history:
            if h.get("sharpness") is not None:
                out.append({"lr": c.lr, "eta": f"η = {c.lr:.3g}", "noise": 0.0,
                            "step": int(h["step"]),
                            "loss": float(h["loss"]), "sharpness": float(h["sharpness"]),
                            "two_over_eta": 2.0 / c.lr})
    emit(out)
    if gd.noise > 0 and not _stopped(stop):
        lr = min(gd.lrs)
        label = f"η = {lr:.3g} + noise σ = {gd.noise:.3g}"
        out += [{**r, "eta": label, "two_over_eta": 2.0 / lr}
                for r in noisy_run(preset.net, lr, float(gd.noise), int(gd.steps), every, stop)]
        emit(out)
    return out


def _datasets(result: dict) -> dict:
    return {"grid": result.get("grid", []), "paths": result.get("paths", []),
            "rings": result.get("rings", []), "profile": result.get("profile", []),
            "net": result.get("net", [])}


def matched_sharpness(net_rows: list[dict]) -> dict:
    """Sharpness of each plain-GD step size's run at the train loss every run reaches.

    That ``level`` is the largest final loss; each run's sharpness is read where its loss
    first falls to it: ``{"level": level, "sharpness": {lr: sharpness}}``.

    >>> rows_ = [{"lr": 0.1, "step": 0, "loss": 1.0, "sharpness": 2.0},
    ...          {"lr": 0.1, "step": 9, "loss": 0.5, "sharpness": 4.0},
    ...          {"lr": 0.8, "step": 0, "loss": 1.0, "sharpness": 2.0},
    ...          {"lr": 0.8, "step": 9, "loss": 0.2, "sharpness": 2.5}]
    >>> matched_sharpness(rows_)
    {'level': 0.5, 'sharpness': {0.1: 4.0, 0.8: 2.5}}
    """
    by_lr: dict = {}
    plain = [r for r in net_rows if r.get("noise", 0) == 0]  # the noise arm: noise_arm
    for r in sorted(plain, key=lambda r: (r["lr"], r["step"])):
        by_lr.setdefault(r["lr"], []).append(r)
    if not by_lr:
        return {"level": float("nan"), "sharpness": {}}
    level = max(rs[-1]["loss"] for rs in by_lr.values())
    found = {lr: next(r["sharpness"] for r in rs if r["loss"] <= level)
             for lr, rs in by_lr.items()}
    return {"level": level, "sharpness": found}


def summary(result: dict, edge_lr: float) -> dict:
    """The chapter's figures: the best and worst fractions reaching the global minimum.

    ``small_eta_best`` over step sizes below the ring edge ``edge_lr`` (any noise),
    ``large_eta_worst`` over plain GD (no noise) with ``2 * edge_lr < eta < 1.5``.

    >>> summary({"grid": [{"lr": 0.001, "noise": 1.0, "reached": 0.0},
    ...                   {"lr": 0.5, "noise": 0.0, "reached": 1.0}]}, 0.005)
    {'small_eta_best': 0.0, 'large_eta_worst': 1.0}
    """
    small = [r["reached"] for r in result["grid"] if r["lr"] < edge_lr]
    large = [r["reached"] for r in result["grid"]
             if 2 * edge_lr < r["lr"] < 0.75 * 2 and r["noise"] == 0]
    return {"small_eta_best": max(small) if small else float("nan"),
            "large_eta_worst": min(large) if large else float("nan")}
