"""Chapter 12's experiment: periodic destabilisations of a scale-invariant net under weight decay.

Lobacheva, Kodryan, Chirkova, Malinin, Vetrov (NeurIPS 2021, arXiv 2106.15739).  One run
of GD (or SGD) with weight decay :math:`\\lambda` on a
:class:`~eoslab.curvature.scale_invariance.ScaleInvariantMLP`, recording the train loss,
the weight norm :math:`\\lVert w\\rVert` of the scale-invariant weights, the effective step
:math:`\\eta/\\lVert w\\rVert^2` and the edge ratio :math:`\\eta\\lambda_{\\max}/2`;
:func:`~eoslab.chapters.ch12_bn_wd_periodic.periodic.period_summary` finds the
destabilisations, and their median period times :math:`\\eta\\lambda` is the chapter's figure.

Since :math:`\\lambda_{\\max}(\\nabla^2 L(w)) = S_{\\rm sph}/\\lVert w\\rVert^2`, the edge ratio
is the effective step times the spherical sharpness over 2: weight decay raises it through
the quiet phase and each spike comes when it reaches 1, the edge of stability of chapter 02.

Usage::

    from eoslab.chapters.presets import get_preset
    preset = get_preset("12", "quick")
    result = experiment(preset, {"lr": preset.lr, "wd": preset.wd})
    result["summary"]["scaled_period"]   # median period * eta * lambda
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING

import torch

from eoslab.chapters.ch12_bn_wd_periodic.periodic import period_summary, training_state
from eoslab.core.losses import get_loss
from eoslab.core.train import fit
from eoslab.curvature.scale_invariance import ScaleInvariantMLP, ScaleInvariantProbe

if TYPE_CHECKING:  # the registry imports meta; importing it here first would be circular
    from eoslab.chapters.ch12_bn_wd_periodic.meta import (
        BNWeightDecayPreset,
        ScaleInvariantOptions,
    )
    from eoslab.core.netspec import NetSpec

__all__ = ["STAGE", "build_si_model", "edge_before_spikes", "experiment"]

STAGE = "GD + weight decay"


def build_si_model(net: NetSpec, options: ScaleInvariantOptions, data) -> ScaleInvariantMLP:
    """The scale-invariant MLP of ``net`` and ``options`` for ``data`` (same dtype, device)."""
    model = ScaleInvariantMLP(math.prod(data.input_shape), data.n_outputs, width=net.width,
                              depth=net.depth, norm=options.norm, out_scale=options.out_scale,
                              eps=options.eps, seed=net.model_seed)
    return model.to(device=data.x_train.device, dtype=data.x_train.dtype)


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


def experiment(preset: BNWeightDecayPreset, settings: dict, *, emit=None,
               stop: threading.Event | None = None) -> dict:
    """Train at ``settings["lr"]`` and ``settings["wd"]``; returns the JSON-ready result.

    Keys: ``status``, ``lr``, ``wd``, ``steps``, ``history`` (step, loss, acc, si_norm,
    eff_lr, sharpness, edge_ratio), ``summary``
    (:func:`~eoslab.chapters.ch12_bn_wd_periodic.periodic.period_summary` with
    ``edge_before``), ``state``
    (:func:`~eoslab.chapters.ch12_bn_wd_periodic.periodic.training_state`), ``seconds``,
    ``datasets`` (``history`` and ``events``) and, if the run blew up, ``diverged``.
    """
    lr, wd = float(settings["lr"]), float(settings["wd"])
    data = preset.net.load_data()
    model = build_si_model(preset.net, preset.si_mlp, data)
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=wd)
    rows: list[dict] = []

    def on_row(row):
        rows.append(_row(row, lr))
        if emit is not None:
            emit({"history": list(rows)}, row["step"])

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets: one thread avoids OpenMP oversubscription stalls
    try:
        run = fit(model, data, preset.net.loss, opt, steps=preset.steps,
                  batch_size=preset.batch_size, record_every=preset.record_every,
                  probes=[ScaleInvariantProbe(preset.record_every),
                          ScaleInvariantProbe(preset.sharpness_every, sharpness=True)],
                  callbacks=[on_row], stop=stop, eval_test=False)
    finally:
        torch.set_num_threads(threads)
    summary = period_summary(rows, lr, wd)
    summary["edge_before"] = edge_before_spikes(rows, summary["events"])
    events = [{"step": e["step"]} for e in summary["events"]]
    zeros = torch.zeros(len(data.y_train), data.n_outputs, dtype=data.x_train.dtype,
                        device=data.x_train.device)
    chance = float(get_loss(preset.net.loss)(zeros, data.y_train))  # a uniform guess
    result = {"status": run.status, "lr": lr, "wd": wd, "steps": preset.steps,
              "history": rows, "summary": summary, "seconds": run.seconds,
              "state": training_state(rows, summary, chance),
              "datasets": {"history": rows, "events": events}}
    if run.diverged:
        step, value = run.diverged_at
        result["diverged"] = {"step": step, "loss": value if math.isfinite(value) else 1e308,
                              "lr": lr, "stage": STAGE}
    return result
