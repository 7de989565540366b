"""Chapter 09's experiment: which minima SGD can stay at, and its escape from the others.

Wu and Su (ICML 2023, arXiv 2305.17490); Wu, Ma, E (NeurIPS 2018).  GD finds an
interpolating minimum of the preset's regression net (:func:`gd_minimum`, once per net and
GD setting).  At that minimum
:func:`~eoslab.chapters.ch09_sgd_stability.sgd_noise.stability_report` gives, for every
batch size of the preset's grid at the chosen step size, GD's ratio
:math:`\\eta\\lambda_{\\max}/2`, the trace ratio :math:`\\eta c_B \\mathrm{Tr}H/2`, the
non-uniformity ratio and the exact mean-square growth factor of linearised SGD.  Then SGD
with the chosen batch size (and, for reference, GD at the same step) starts *at* that
minimum through :func:`eoslab.core.train.fit`: where the SGD criterion fails although
GD's holds, SGD leaves the minimum and, if it does not blow up, settles in a flatter one.
:func:`escape_summary` gives the chapter's figures.

Usage::

    from eoslab.chapters.presets import get_preset
    preset = get_preset("09", "quick")
    result = experiment(preset, {"lr": preset.lr, "batch_size": 4})
    result["summary"]["escaped"]
    # True
"""

from __future__ import annotations

import copy
import functools
import math
import threading

import torch

from eoslab.chapters.ch09_sgd_stability.diagonal_net import norm_experiment
from eoslab.chapters.ch09_sgd_stability.meta import GDMinimum, SgdStabilityPreset
from eoslab.chapters.ch09_sgd_stability.sgd_noise import (
    noise_alignment,
    per_sample_gradients,
    per_sample_jacobian,
    stability_report,
)
from eoslab.core.netspec import NetSpec
from eoslab.core.train import fit
from eoslab.curvature.objective import Objective

__all__ = ["RATIOS", "escape_summary", "experiment", "gd_minimum", "minimum_alignment"]

# report key -> the quantity's name in the norm panel (the second half)
NORM_QUANTITIES = (("l1", "‖β‖₁"), ("test", "test error"))

# report key -> the criterion's name in the chart
RATIOS = (("gd_ratio", "GD: η λ_max / 2"), ("trace_ratio", "trace: η c_B Tr H / 2"),
          ("wme_ratio", "non-uniformity: η s √c_B"),
          ("ms_rate", "exact: mean-square growth per step"))


class _OneThread:
    """Torch on one intra-op thread inside the block (small nets: no oversubscription)."""

    def __enter__(self):
        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.threads)


@functools.lru_cache(maxsize=4)
def _minimum_cached(net: NetSpec, minimum: GDMinimum):
    data, model = net.build()
    run = fit(model, data, net.loss, torch.optim.SGD(model.parameters(), lr=minimum.lr),
              steps=int(minimum.steps), record_every=max(1, minimum.steps // 20),
              eval_test=False)
    if run.status != "finished":
        raise RuntimeError(f"GD did not reach a minimum ({run.summary()}); lower minimum.lr")
    start_loss = run.history[0]["loss"]
    return copy.deepcopy(model.state_dict()), start_loss, run.history[-1]["loss"]


def gd_minimum(preset: SgdStabilityPreset):
    """``(state_dict, initial_loss, final_loss)`` of the GD that finds the minimum.

    Full-batch GD at ``preset.minimum.lr`` for ``preset.minimum.steps`` steps from the
    net's initialisation.  Cached on ``(preset.net, preset.minimum)`` (frozen, hashable):
    the presets that share them share the minimum, and every setting reuses it.
    """
    with _OneThread():
        return _minimum_cached(preset.net, preset.minimum)


def escape_summary(sgd_rows: list[dict], gd_rows: list[dict]) -> dict:
    """How far SGD and GD rose from the minimum they started at.

    ``start`` loss (at the minimum), ``sgd_peak`` / ``gd_peak`` (largest loss of each run
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
    """Alignment :math:`\\mu` of the one-example SGD noise with the Hessian at the model.

    The Hessian is the Gauss-Newton :math:`H = J^\\top J/n`, exact at an interpolating
    minimum; ``jac`` is :func:`per_sample_jacobian` there.
    """
    objective = Objective(model, loss, data.x_train, data.y_train)
    rows = jac.reshape(jac.shape[0], -1)
    hessian = rows.T @ rows / jac.shape[0]
    value = float(objective(objective.params()))
    return noise_alignment(per_sample_gradients(objective), hessian, value)


def _check_batch(preset: SgdStabilityPreset, batch_size) -> int:
    n, batch_size = int(preset.net.n_train), int(batch_size)
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size={batch_size} is not allowed; use an integer in [1, {n}]")
    return batch_size


def _from_minimum(preset, model, data, lr, batch_size, *, on_row, stop, factor):
    """SGD with ``batch_size`` (``None``: full-batch GD) from the model's point."""
    with _OneThread():
        return fit(model, data, preset.net.loss, torch.optim.SGD(model.parameters(), lr=lr),
                   steps=int(preset.steps), batch_size=batch_size,
                   record_every=int(preset.record_every), callbacks=[on_row], stop=stop,
                   divergence_factor=factor, seed=int(preset.sgd_seed), eval_test=False)


def _curvature_rows(at_min: dict, at_end: dict | None) -> list[dict]:
    return [{"point": label, "criterion": name, "ratio": rep[key]}
            for label, rep in (("GD's minimum", at_min), ("where SGD ends", at_end))
            if rep is not None for key, name in RATIOS]


def experiment(preset: SgdStabilityPreset, settings: dict, *, emit=None,
               stop: threading.Event | None = None) -> dict:
    """Stability at the GD minimum for the batch grid, then SGD and GD started there.

    ``settings``: ``lr`` (the step size of SGD and of the reference GD) and ``batch_size``
    (SGD's batch, an integer in ``[1, n_train]``).  Returns ``status``, ``grid`` (one
    :func:`stability_report` per batch size), ``at_min`` and ``at_end`` (reports for the
    chosen batch size at the minimum and where SGD ends), ``alignment``
    (:func:`minimum_alignment`), ``sgd``/``gd`` (history rows), ``summary``
    (:func:`escape_summary`), ``norms`` (the second half,
    :func:`~eoslab.chapters.ch09_sgd_stability.diagonal_net.norm_experiment` on the
    preset's diagonal net, whatever the first half did), ``datasets`` and ``diverged`` when
    a run of the first half blew up.
    """
    lr, batch_size = float(settings["lr"]), _check_batch(preset, settings["batch_size"])
    state, init_loss, min_loss = gd_minimum(preset)
    data, model = preset.net.build()
    model.load_state_dict(state)
    jac = _jacobian(model, data, preset.net.loss)
    grid = [stability_report(jac, lr, int(b))
            for b in sorted(set(preset.batch_grid) | {batch_size})]
    at_min = next(r for r in grid if r["batch_size"] == batch_size)
    datasets = {"ratios": [{"batch_size": r["batch_size"], "ratio": r[key], "criterion": name}
                           for r in grid for key, name in RATIOS],
                "chosen": [{"batch_size": batch_size}], "loss": [], "curvature": [], "norms": []}
    result = {"status": "finished", "grid": grid, "at_min": at_min, "lr": lr,
              "batch_size": batch_size, "min_loss": min_loss,
              "alignment": minimum_alignment(model, data, preset.net.loss, jac),
              "datasets": datasets}
    if emit is not None:
        emit(dict(datasets), 0)
    # divergence: loss 1000x above the *initial* loss of the problem, not of the minimum
    factor = 1e3 * init_loss / max(min_loss, 1e-300)
    runs = {}
    for i, (name, b) in enumerate(((f"SGD, B = {batch_size}", batch_size), ("GD (B = n)", None))):
        model.load_state_dict(state)
        rows: list[dict] = []

        def on_row(row, rows=rows, name=name, offset=i * int(preset.steps)):
            rows.append({"step": row["step"], "loss": row["loss"]})
            datasets["loss"].append({"step": row["step"], "loss": row["loss"], "run": name})
            if emit is not None:
                emit({"loss": list(datasets["loss"])}, offset + row["step"])

        run = _from_minimum(preset, model, data, lr, b, on_row=on_row, stop=stop, factor=factor)
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
            result["at_end"] = stability_report(_jacobian(model, data, preset.net.loss), lr,
                                                batch_size)
    sgd_rows, gd_rows = runs.values()
    result["sgd"], result["gd"] = sgd_rows, gd_rows
    result["summary"] = escape_summary(sgd_rows, gd_rows) if sgd_rows else None
    datasets["curvature"] = _curvature_rows(at_min, result.get("at_end"))
    _norms(preset, result, emit, stop)
    return result


def _norm_rows(out: dict, runs: list[dict]) -> list[dict]:
    rows = []
    for r in runs:
        if r["status"] != "finished":
            continue
        rows += [{"eta": r["lr"], "quantity": name, "value": r[key], "point": "where SGD ends"}
                 for key, name in NORM_QUANTITIES]
        rows.append({"eta": r["lr"], "quantity": "Tr H", "value": r["trace"],
                     "point": "where SGD ends"})
    rows += [{"eta": r["lr"], "quantity": "Tr H", "value": 2 / r["lr"],
              "point": "2/η (B = 1 stability)"} for r in runs]
    gd = out.get("gd")
    if gd is not None:
        rows += [{"eta": r["lr"], "quantity": name, "value": gd[key], "point": "GD's minimum"}
                 for r in runs for key, name in NORM_QUANTITIES + (("trace", "Tr H"),)]
    return rows


def _norms(preset: SgdStabilityPreset, result: dict, emit, stop) -> None:
    """The second half: SGD's stable minima of a diagonal net have a small l1 norm."""
    offset = 2 * int(preset.steps)

    def on_run(out):
        result["datasets"]["norms"] = _norm_rows(out, out["runs"])
        if emit is not None:
            emit({"norms": list(result["datasets"]["norms"])}, offset + len(out["runs"]))

    with _OneThread():
        out = norm_experiment(preset.norms, stop=stop, on_run=on_run)
    result["norms"] = out
    result["datasets"]["norms"] = _norm_rows(out, out["runs"])
    if out["status"] == "stopped":
        result["status"] = "stopped"
