"""Chapter 13's experiment: weight decay lowers the spherical sharpness; BatchNorm smooths.

Lyu, Li, Arora (NeurIPS 2022, arXiv 2206.07085) and Santurkar, Tsipras, Ilyas, Madry
(NeurIPS 2018, arXiv 1805.11604).  Three full-batch GD runs at one step size :math:`\\eta`:

* ``bn_wd``: the scale-invariant BatchNorm MLP with weight decay :math:`\\lambda`;
* ``bn``: the same net without weight decay;
* ``plain``: the same MLP without BatchNorm (not scale-invariant).

The two BatchNorm runs are probed for the spherical sharpness
:math:`\\lVert w\\rVert^2 \\lambda_{\\max}(\\nabla^2 L)` and the effective step
:math:`\\eta/\\lVert w\\rVert^2`
(:class:`~eoslab.curvature.scale_invariance.ScaleInvariantProbe`); the two runs without
weight decay for Santurkar et al.'s loss variation, gradient predictiveness and
:math:`\\beta`-smoothness along the step
(:class:`~eoslab.chapters.ch13_normalization_sharpness.smoothness.SmoothnessProbe`).

Usage::

    from eoslab.chapters.presets import get_preset
    preset = get_preset("13", "quick")
    result = experiment(preset, {"lr": preset.lr, "wd": preset.wd})
    result["summary"]["bn_wd"]["sph_ratio"]   # last / first spherical sharpness

:func:`normalization_summary` gives the chapter's figures.
"""

from __future__ import annotations

import math
import statistics
import threading
from typing import TYPE_CHECKING

import torch

from eoslab.chapters.ch13_normalization_sharpness.smoothness import (
    SmoothnessProbe,
    StepCurvatureProbe,
)
from eoslab.core.losses import accuracy, get_loss
from eoslab.core.train import fit
from eoslab.curvature.scale_invariance import ScaleInvariantMLP, ScaleInvariantProbe

if TYPE_CHECKING:  # the registry imports meta; importing it here first would be circular
    from eoslab.chapters.ch13_normalization_sharpness.meta import NormalizationPreset

__all__ = ["RUNS", "experiment", "normalization_summary", "run_state"]

RUNS = {"bn_wd": "BatchNorm + weight decay", "bn": "BatchNorm, no weight decay",
        "plain": "no BatchNorm"}
_KEYS = ("step", "loss", "si_norm", "eff_lr", "sharpness", "spherical_sharpness",
         "loss_variation", "grad_predictiveness", "beta_smoothness", "step_curvature")


def _clean(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value


# one dataset per drawn quantity: (field, or a function of the row) -> positive values only
PANEL_FIELDS = ("loss", "spherical_sharpness", "step_sharpness", "eff_lr",
                "grad_predictiveness", "beta_smoothness", "beta_edge", "loss_variation")


def panel_data(rows: list[dict]) -> dict:
    """The chart's datasets: ``history`` and one per quantity drawn.

    Per quantity of :data:`PANEL_FIELDS` (and ``sph_edge``, :math:`2/\\eta_{\\rm eff}`
    where the spherical sharpness was measured) the rows
    ``{"step", "run", "v"}`` with a finite positive value, so a quantity never measured in
    this run is an empty dataset (its panel says so) rather than a filtered-out one.

    >>> panel_data([{"run": "BN", "step": 0, "loss": 0.5, "eff_lr": 0.25,
    ...              "spherical_sharpness": 3.0}])["sph_edge"]
    [{'step': 0, 'run': 'BN', 'v': 8.0}]
    """
    def positive(row, value):
        ok = isinstance(value, (int, float)) and math.isfinite(value) and value > 0
        return [{"step": row["step"], "run": row["run"], "v": value}] if ok else []

    out = {f: [r for row in rows for r in positive(row, row.get(f))] for f in PANEL_FIELDS}
    out["sph_edge"] = [r for row in rows if row.get("spherical_sharpness") is not None
                       and row.get("eff_lr") for r in positive(row, 2.0 / row["eff_lr"])]
    return {"history": rows, **out}


def _median(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def _edge_ratios(history: list[dict]) -> dict:
    """Second-half medians of the two edge ratios (2 is the edge of stability).

    ``lmax_edge``: :math:`\\eta\\lambda_{\\max}`; ``step_edge``: :math:`\\eta` times the
    curvature along the step.

    :math:`\\eta\\lambda_{\\max} = \\eta_{\\rm eff} \\lVert w\\rVert^2\\lambda_{\\max}`: the
    effective step times the spherical sharpness.
    """
    late = history[len(history) // 2:]  # rows are evenly spaced in steps
    lmax = [r["eff_lr"] * r["spherical_sharpness"] for r in late
            if r.get("spherical_sharpness") is not None and r.get("eff_lr") is not None]
    step = [r["eff_lr"] * r["step_sharpness"] for r in late
            if r.get("step_sharpness") is not None and r.get("eff_lr") is not None]
    return {"lmax_edge": statistics.median(lmax) if lmax else None,
            "step_edge": statistics.median(step) if step else None}


def run_state(run: dict, zero_loss: float) -> str:
    """``"diverged at step t"``, ``"not training"`` or ``"trained"`` for one run's result.

    Not training: over the last quarter (two rows at least) the loss is flat (max/min <
    1.001) at 90% or more of ``zero_loss``, the loss of a zero output (all ReLUs dead: the
    head sees zeros).

    >>> flat = [{"step": s, "loss": 0.5} for s in range(8)]
    >>> run_state({"status": "finished", "history": flat}, zero_loss=0.5)
    'not training'
    >>> run_state({"status": "diverged", "diverged_at": 3, "history": flat}, 0.5)
    'diverged at step 3'
    """
    if run["status"] == "diverged":
        return f"diverged at step {run.get('diverged_at')}"
    losses = [r["loss"] for r in run["history"] if r.get("loss") is not None]
    late = losses[-max(len(losses) // 4, 2):]
    if len(late) >= 2 and min(late) >= 0.9 * zero_loss and max(late) < 1.001 * min(late):
        return "not training"
    return "trained" if run["status"] == "finished" else run["status"]


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
                     "test_acc": run.get("test_acc"), **_edge_ratios(run["history"])}
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


def _one_run(preset: NormalizationPreset, data, name: str, lr: float, wd: float, emit_row,
             stop):
    """Train run ``name`` of :data:`RUNS`; returns the ``fit`` run and the test accuracy."""
    net, options = preset.net, preset.si_mlp
    model = ScaleInvariantMLP(math.prod(data.input_shape), data.n_outputs, width=net.width,
                              depth=net.depth, norm="none" if name == "plain" else "batch",
                              out_scale=options.out_scale, init=options.init,
                              seed=net.model_seed)
    model = model.to(device=data.x_train.device, dtype=data.x_train.dtype)
    probes = []
    if name != "plain":
        probes += [ScaleInvariantProbe(preset.smooth_every),
                   ScaleInvariantProbe(preset.sharpness_every, sharpness=True)]
    if name == "bn_wd":
        probes.append(StepCurvatureProbe(preset.smooth_every))
    else:
        probes.append(SmoothnessProbe(preset.smooth_every, preset.multiples))
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=wd if name == "bn_wd" else 0.0)
    run = fit(model, data, net.loss, opt, steps=preset.steps,
              record_every=preset.record_every, probes=probes, callbacks=[emit_row],
              stop=stop, eval_test=False)
    test_acc = None
    if run.status == "finished" and data.x_test.shape[0] > 0:
        model.eval()  # BatchNorm with the running statistics gathered in training
        with torch.no_grad():
            test_acc = float(accuracy(model(data.x_test), data.y_test))
    return run, test_acc


def experiment(preset: NormalizationPreset, settings: dict, *, emit=None,
               stop: threading.Event | None = None) -> dict:
    """The three runs at ``settings["lr"]`` (weight decay ``settings["wd"]`` for ``bn_wd``).

    Returns ``status``, ``lr``, ``wd``, ``runs`` (name -> ``history``, ``status``,
    ``test_acc``), ``summary`` (:func:`normalization_summary`), ``datasets``
    (:func:`panel_data`) and, if a run blew up, ``diverged`` (the others still ran).
    """
    lr, wd = float(settings["lr"]), float(settings["wd"])
    data = preset.net.load_data()
    zeros = torch.zeros(len(data.y_train), data.n_outputs, dtype=data.x_train.dtype,
                        device=data.x_train.device)
    zero_loss = float(get_loss(preset.net.loss)(zeros, data.y_train))  # all ReLUs dead
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
                if clean["step_curvature"] is not None and clean["si_norm"] is not None:
                    clean["step_sharpness"] = clean["step_curvature"] * clean["si_norm"] ** 2
                if clean["beta_smoothness"] is not None:
                    clean["beta_edge"] = 2.0 / lr
                runs[name]["history"].append(clean)
                if emit is not None:
                    emit(panel_data(rows()), i * preset.steps + row["step"])

            run, test_acc = _one_run(preset, data, name, lr, wd, emit_row, stop)
            runs[name].update(status=run.status, test_acc=test_acc,
                              diverged_at=run.diverged_at[0] if run.diverged else None)
            runs[name]["state"] = run_state(runs[name], zero_loss)
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
              "summary": normalization_summary(runs), "datasets": panel_data(rows())}
    if diverged:
        result["diverged"] = diverged
    return result
