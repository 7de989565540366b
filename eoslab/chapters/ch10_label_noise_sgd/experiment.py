"""Chapter 10's experiment: label-noise SGD drifts along the zero-loss manifold to flat minimisers.

Damian, Ma, Lee (NeurIPS 2021, arXiv 2106.06530).  Two stages, both with the step size
:math:`\\eta` and the noise level :math:`\\sigma` of the settings:

1. the exact model :math:`f = uv` with :math:`y = 1`, started at several points of the
   hyperbola :math:`uv = 1`
   (:func:`~eoslab.chapters.ch10_label_noise_sgd.label_noise.product_label_noise`): the
   paths end at :math:`|u| = |v| = 1`, where :math:`\\operatorname{tr}\\nabla^2 L = u^2 + v^2`
   is smallest (2);
2. a net on digits: plain SGD until it fits, then two continuations from the same point,
   with and without label noise
   (:class:`~eoslab.chapters.ch10_label_noise_sgd.label_noise.LabelNoiseSGD` in
   :func:`eoslab.core.train.fit`), with :math:`\\operatorname{tr}\\nabla^2 L` estimated by
   Hutch++ (:class:`~eoslab.chapters.ch10_label_noise_sgd.label_noise.TraceProbe`).

Usage::

    from eoslab.chapters.presets import get_preset
    preset = get_preset("10", "quick")
    result = experiment(preset, {"lr": preset.lr, "sigma": preset.sigma})
    result["summary"]["ratio"]   # tr Hessian with / without label noise

:func:`drift_summary` gives the chapter's figures.
"""

from __future__ import annotations

import copy
import math
import threading
from typing import TYPE_CHECKING

import torch

from eoslab.chapters.ch10_label_noise_sgd.label_noise import (
    LabelNoiseSGD,
    TraceProbe,
    min_trace,
    product_label_noise,
)
from eoslab.core.train import fit

if TYPE_CHECKING:  # the registry imports meta; importing it here first would be circular
    from eoslab.chapters.ch10_label_noise_sgd.meta import LabelNoisePreset

__all__ = ["CLEAN", "NOISY", "WARM", "drift_summary", "experiment"]

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


def _diverged_note(info: dict, replicas: int | None = None) -> str:
    """What a panel says of its part's divergence."""
    who = (info["stage"] if replicas is None
           else f"f = uv ({info['replicas']} of {replicas} starts)")
    return f"{who} diverged at step {info['step']}"


def _uv_stage(preset: LabelNoisePreset, lr: float, sigma: float) -> dict:
    toy = preset.uv
    theta0 = torch.tensor(toy.starts, dtype=torch.float64)
    traj = product_label_noise(theta0, toy.target, lr, sigma, toy.steps, seed=preset.seed,
                               record_every=toy.record)
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
           "min_trace": min_trace(toy.target, 2)}
    bad = traj.diverged_at[traj.diverged_at >= 0]
    if bad.numel():
        out["diverged"] = {"step": int(bad.min()), "loss": 1e308, "lr": lr,
                           "stage": "f = uv", "replicas": int(bad.numel())}
    return out


def experiment(preset: LabelNoisePreset, settings: dict, *, emit=None,
               stop: threading.Event | None = None) -> dict:
    """Both stages at ``settings["lr"]`` and ``settings["sigma"]``; see the module docs.

    Returns ``status``, ``lr``, ``sigma``, ``uv`` (paths, final points), ``net`` (rows with
    ``run``, ``step``, ``loss``, ``trace``), ``summary`` (:func:`drift_summary`) and
    ``datasets`` (``uv_path``, ``uv_curve``, ``net``, and ``uv_note`` / ``net_note``: one
    row naming the divergence of that part, or none); a blow-up adds ``diverged`` (the
    toy's when it blew up, else the net's).  The net is trained even when the toy blew up:
    its panels keep their data and each part says in place whether it diverged.
    """
    lr, sigma = float(settings["lr"]), float(settings["sigma"])
    uv = _uv_stage(preset, lr, sigma)
    net: list[dict] = []
    result = {"status": "finished", "lr": lr, "sigma": sigma, "uv": uv, "net": net}

    notes = {"uv_note": [], "net_note": []}

    def datasets():
        return {"uv_path": uv["path"], "uv_curve": uv["curve"], "net": list(net), **notes}

    if "diverged" in uv:
        notes["uv_note"] = [{"note": _diverged_note(uv["diverged"], len(preset.uv.starts))}]
    if emit is not None:
        emit(datasets(), 0)

    def on_row(row: dict, done: int) -> None:
        net.append(row)
        if emit is not None:
            emit(datasets(), done)

    stage = _net_stage(preset, lr, sigma, on_row, stop)
    if "diverged" in stage:
        notes["net_note"] = [{"note": _diverged_note(stage["diverged"])}]
    if stage.get("status") == "stopped" or "diverged" not in uv:
        result.update(stage)
    else:  # the toy's divergence is the run's; the net's own outcome is kept beside it
        result.update(status="diverged", diverged=uv["diverged"], net_status=stage)
    result["summary"] = drift_summary(result)
    result["datasets"] = datasets()
    return result


def _net_stage(preset: LabelNoisePreset, lr: float, sigma: float, on_row, stop) -> dict:
    """Warm-up, then the clean and the noisy continuation from the warm-up's end.

    ``on_row(row, done)`` receives each recorded row (``run``, ``step``, ``loss``,
    ``trace``) and the steps done so far; returns ``{}`` or the ``status`` (and
    ``diverged``) of the stage that did not finish.
    """
    data, model = preset.net.build()
    warm = preset.warmup
    stages = [(WARM, 0.0, warm, 0), (CLEAN, 0.0, preset.steps, warm),
              (NOISY, sigma, preset.steps, warm)]
    done, start_state = 0, None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets: one thread avoids OpenMP oversubscription stalls
    try:
        for name, noise, steps, offset in stages:
            if start_state is not None:
                model.load_state_dict(start_state)
            opt = LabelNoiseSGD(torch.optim.SGD(model.parameters(), lr=lr), noise,
                                seed=preset.seed + 1)

            def record(row, name=name, offset=offset, done=done):
                on_row({"run": name, "step": row["step"] + offset,
                        "loss": _finite(row.get("loss")), "trace": _finite(row.get("trace"))},
                       done + row["step"])

            run = fit(model, data, preset.net.loss, opt, steps=steps, batch_size=preset.batch_size,
                      record_every=preset.record_every,
                      probes=[TraceProbe(preset.record_every, preset.trace_m)],
                      callbacks=[record], stop=stop, eval_test=False, seed=preset.seed)
            done += steps
            if run.status != "finished":
                out: dict = {"status": run.status}
                if run.diverged:
                    step, value = run.diverged_at
                    out["diverged"] = {"step": step + offset,
                                       "loss": value if math.isfinite(value) else 1e308,
                                       "lr": lr, "stage": name}
                return out
            if start_state is None:
                start_state = copy.deepcopy(model.state_dict())
    finally:
        torch.set_num_threads(threads)
    return {}
