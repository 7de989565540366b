"""Chapter 07's experiment: the ReLU bias turns negative only past a critical step size.

Ahn, Bubeck, Chewi, Lee, Suarez & Zhang, *Learning threshold neurons via the "edge of
stability"*, NeurIPS 2023, arXiv 2212.07469.

:func:`experiment` runs three stages on a
:class:`~eoslab.chapters.ch07_threshold_neurons.meta.ThresholdNeuronsPreset`:

1. the task and the initial sharpness :math:`\\lambda_0` of every init, hence the edge
   :math:`\\eta^* = 2/\\lambda_0` (about :math:`8\\pi/d`);
2. the bias and the loss along GD at the setting's step size and at the preset's
   ``traj_ratios`` times :math:`\\eta^*`, against time :math:`\\eta t`;
3. the final bias and test accuracy over a grid of step sizes around :math:`\\eta^*`
   (every init), all runs for the same time :math:`\\eta T`.

A step size so large that the bias drops below :math:`-\\max_i |x_i|` switches every unit
off for good; the result reports that as a divergence of the ReLU layer.

Usage::

    from eoslab.chapters.presets import get_preset
    result = experiment(get_preset("07", "quick"), {"lr": 0.75, "time": 10.0})
    result["status"], sorted(result["datasets"])
    # ('finished', ['edge', 'final', 'traj'])
"""

from __future__ import annotations

import functools
import math
import threading

import numpy as np
import torch

from eoslab.chapters.ch07_threshold_neurons.meta import ThresholdNeuronsPreset
from eoslab.chapters.ch07_threshold_neurons.threshold_neuron import (
    init_params,
    initial_sharpness,
    network_output,
    sparse_coding,
    train,
)
from eoslab.core.devices import resolve_device
from eoslab.speed.threads import single_thread
from eoslab.ui.status import classify_losses

__all__ = ["TOTAL_WORK", "experiment", "transition_summary"]

TOTAL_WORK = 3  # progress units: the edge, the trajectories, the grid


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
    return f"η = {lr:.3g} ({lr / star:.2g} η*)"


@functools.cache
def _edge(d: int, n: int, signal: float, data_seed: int, seeds: tuple) -> float:
    x, y = sparse_coding(n, d, signal, seed=data_seed)
    with single_thread():
        lam0 = initial_sharpness(init_params(d, list(seeds), device="cpu"), x, y)
    return 2.0 / float(np.mean(lam0))


def edge_at_init(preset: ThresholdNeuronsPreset) -> float:
    """:math:`\\eta^* = 2/\\lambda_0` of the preset's task and inits (on the CPU, cached)."""
    return _edge(int(preset.d), int(preset.n), float(preset.signal), int(preset.data_seed),
                 tuple(int(s) for s in preset.seeds))


def slider_run_state(traj: dict, x: torch.Tensor) -> tuple[str, str]:
    """The state of the slider's run (copy 0) and why (:mod:`eoslab.ui.status`).

    Dead units: when the network outputs 0 on at least 95 % of the training samples at
    the end, or on at least half of them while the loss of the run's second half stays
    within 1 % of :math:`\\log 2` (the loss of the zero output), no gradient reaches most
    of the first layer: the run is "not training", whatever the loss did before.
    """
    steps = traj["steps"][0]
    losses = [v for t, v in zip(traj["history_steps"], traj["loss"][:, 0].tolist())
              if t <= steps]
    final = {k: v[:1] for k, v in traj["params"].items()}
    silent = float((network_output(final, x).abs() < 1e-9).double().mean())
    half = losses[len(losses) // 2:]
    at_log2 = all(abs(v - math.log(2)) <= 0.01 * math.log(2) for v in half)
    if silent >= 0.95 or (silent >= 0.5 and at_log2):
        return "not-training", (f"dead units: the network outputs 0 on {silent:.0%} of the "
                                f"samples, loss flat at {losses[-1]:.3g} ≈ log 2")
    return classify_losses(losses), ""


def _stopped(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def experiment(preset: ThresholdNeuronsPreset, settings: dict, *, emit=None,
               stop: threading.Event | None = None) -> dict:
    """The chapter's three stages (see the module docs); returns a JSON-ready result.

    ``settings`` holds ``lr`` (the step size drawn) and optionally ``time`` (the time
    :math:`\\eta T` of every run; the preset's by default); ``emit(datasets, done)``
    receives partial datasets (``done`` counts up to :data:`TOTAL_WORK`). The result has
    ``status``, ``datasets``, ``lambda0``, ``eta_star``, ``theory_eta_star``, ``traj`` and
    ``final`` (rows), ``summary`` (:func:`transition_summary`), ``lr`` and the slider run's
    ``state`` and ``state_note`` (:func:`slider_run_state`).
    """
    with single_thread():  # small tensors: one intra-op thread (eoslab.speed.threads)
        return _run(preset, settings, emit or (lambda *_: None), stop)


def _task(preset: ThresholdNeuronsPreset, device) -> tuple[torch.Tensor, ...]:
    """Train and test sets of the sparse-coding task, on ``device``."""
    x, y = sparse_coding(int(preset.n), int(preset.d), preset.signal,
                         seed=int(preset.data_seed))
    xt, yt = sparse_coding(int(preset.n_test), int(preset.d), preset.signal,
                           seed=int(preset.data_seed) + 1000)
    return tuple(t.to(device) for t in (x, y, xt, yt))


def _run(preset: ThresholdNeuronsPreset, settings: dict, emit, stop) -> dict:
    d, seeds = int(preset.d), [int(s) for s in preset.seeds]
    time_ = float(settings.get("time", preset.time))
    device = resolve_device(preset.device)
    x, y, xt, yt = _task(preset, device)
    # 1. the edge of stability
    lam0 = initial_sharpness(init_params(d, seeds, device=device), x, y)
    star = 2.0 / float(np.mean(lam0))
    out = {"status": "finished", "lambda0": lam0, "eta_star": star, "d": d,
           "theory_eta_star": 8 * math.pi / d, "edge": [{"lr": star}]}
    emit({"edge": out["edge"]}, 1)
    # 2. trajectories at the setting's step size and the reference multiples of eta*
    lr = float(settings["lr"])
    out["lr"] = lr
    traj = _trajectories(preset, x, y, lr, star, time_, device, stop)
    out["traj"] = traj["rows"]
    out["state"], out["state_note"] = slider_run_state(traj, x)
    emit({"traj": out["traj"]}, 2)
    if _stopped(stop):
        return {**out, "status": "stopped", "datasets": {}}
    if traj["dead"][0]:
        below = traj["bias"][:, 0] <= -float(x.abs().max())
        at = int(torch.nonzero(below).flatten()[0])
        out.update(status="diverged", diverged={
            "step": at, "loss": float(traj["loss"][at, 0]), "lr": lr,
            "stage": f"the ReLU layer (bias {float(traj['bias'][at, 0]):.3g}: every unit off)"})
    # 3. the grid of step sizes around eta* (whatever the slider's run did: its panels keep
    #    their data when that run dies)
    final = _grid(preset, (x, y, xt, yt), star, time_, device, stop)
    if final is None:
        return {k: v for k, v in out.items() if k != "diverged"} | {"status": "stopped",
                                                                    "datasets": {}}
    out["final"] = final
    out["summary"] = transition_summary(final)
    out["datasets"] = _datasets(out)
    return out


def _trajectories(preset: ThresholdNeuronsPreset, x, y, lr: float, star: float, time_: float,
                  device, stop) -> dict:
    """Stage 2: GD from the first init at ``lr`` and at ``traj_ratios`` times ``star``.

    Returns :func:`~eoslab.chapters.ch07_threshold_neurons.threshold_neuron.train`'s
    result (run 0 is the one at ``lr``) with the chart's ``rows`` added.
    """
    lrs = [lr] + [star * r for r in preset.traj_ratios]
    params = init_params(int(preset.d), [int(preset.seeds[0])] * len(lrs), device=device)
    traj = train(params, x, y, lrs, time_, int(preset.min_steps), stop=stop)
    rows = []
    for c, eta in enumerate(lrs):
        name = ("slider: " if c == 0 else "") + _label(eta, star)
        for t, b, loss in zip(traj["history_steps"], traj["bias"][:, c].tolist(),
                              traj["loss"][:, c].tolist()):
            if t > traj["steps"][c]:
                break
            rows.append({"time": eta * t, "step": t, "bias": b, "loss": loss, "run": name})
    return {**traj, "rows": rows}


def _grid(preset: ThresholdNeuronsPreset, task, star: float, time_: float, device,
          stop) -> list[dict] | None:
    """Stage 3: final bias and test accuracy of every (ratio, init); ``None`` if stopped."""
    x, y, xt, yt = task
    seeds = [int(s) for s in preset.seeds]
    ratios = np.geomspace(preset.ratio_min, preset.ratio_max, int(preset.n_lrs))
    lrs = [star * float(r) for _ in seeds for r in ratios]
    params = init_params(int(preset.d), [s for s in seeds for _ in ratios], device=device)
    res = train(params, x, y, lrs, time_, int(preset.min_steps), record_every=10 ** 9,
                stop=stop)
    if _stopped(stop):
        return None
    acc = ((network_output(res["params"], xt) * yt) > 0).double().mean(-1).tolist()
    bias = res["params"]["bias"].tolist()
    return [{"lr": eta, "ratio": eta / star, "seed": seeds[i // len(ratios)], "bias": b,
             "test_acc": a, "dead": res["dead"][i]}
            for i, (eta, b, a) in enumerate(zip(lrs, bias, acc))]


def _datasets(result: dict) -> dict:
    return {"final": result.get("final", []), "traj": result.get("traj", []),
            "edge": result.get("edge", [])}
