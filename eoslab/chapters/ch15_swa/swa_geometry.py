"""Where SWA lands: SGD iterates on the rim of a basin, their average near its centre.

Izmailov, Podoprikhin, Garipov, Vetrov, Wilson, "Averaging Weights Leads to Wider Optima
and Better Generalization", UAI 2018 (arXiv 1803.05407).

SGD with a constant (high) step size does not settle: its iterates :math:`w_{t_i}` keep
bouncing on the walls of a wide, flat region.  Their running mean

.. math:: w_{\\mathrm{SWA}} = \\frac1n \\sum_{i=1}^n w_{t_i}

(:class:`eoslab.optimizers.averaging.WeightAverage`, i.e.
``torch.optim.swa_utils.AveragedModel``) lies near the centre of that region.
:func:`swa_experiment` trains once on a :class:`~eoslab.chapters.ch15_swa.meta.SWAPreset`,
collects the iterates, and measures the picture of the paper:

* the plane through three iterates (first, middle, last), with the train loss on it and
  every iterate and the SWA point projected onto it (:class:`eoslab.geometry.plane.Plane`);
* train and test loss / accuracy at SWA, at the last SGD iterate and averaged over the
  iterates;
* flatness: the top Hessian eigenvalue (:mod:`eoslab.curvature.eigen`) and 1-D slices
  :math:`L(w + \\alpha d)` along filter-normalised random directions (Li et al. 2018,
  :mod:`eoslab.geometry.directions`), as in the paper's section 3;
* the paper's baseline: SGD from the same initialisation and minibatches with a
  *decaying* step size (:func:`decayed_factor`: :math:`\\eta` for the first half, then
  linearly down to :math:`0.01\\eta` at 90% of the steps, then constant, the schedule
  the paper compares SWA with), measured like the others (``"decayed"``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import torch

from eoslab.chapters.ch15_swa.meta import Landscape, SWAPreset
from eoslab.core.train import fit
from eoslab.curvature.eigen import top_eigen
from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.objective import Objective
from eoslab.geometry.directions import filter_normalize, random_direction
from eoslab.geometry.landscape import slice_1d
from eoslab.geometry.plane import Plane
from eoslab.optimizers.averaging import Snapshots, WeightAverage
from eoslab.speed.threads import single_thread

__all__ = ["decayed_factor", "flat_width", "mean_slice", "swa_experiment", "top_sharpness"]

Emit = Callable[[dict, int], None]


def top_sharpness(objective: Objective, params, tol: float = 1e-3) -> float:
    """:math:`\\lambda_{\\max}(\\nabla^2 L)` at ``params`` (Lanczos on Hessian-vector products)."""
    return float(top_eigen(HessianOperator(objective, params), tol=tol).values[0])


def mean_slice(objective: Objective, params, alphas, seeds=(0, 1, 2)) -> list[float]:
    """Train loss along filter-normalised random directions, averaged over ``seeds``."""
    total = np.zeros(len(alphas))
    for seed in seeds:
        d = filter_normalize(random_direction(params, seed=seed), params)
        total += np.asarray(slice_1d(objective, params, d, alphas)["loss"])
    return (total / len(seeds)).tolist()


def flat_width(alphas, losses, rise: float) -> float:
    """Width of the interval around ``alpha = 0`` where the loss stays below its centre + ``rise``.

    Linear interpolation between grid points.

    >>> flat_width([-2.0, -1.0, 0.0, 1.0, 2.0], [4.0, 1.0, 0.0, 1.0, 4.0], 1.0)
    2.0
    """
    a, v = np.asarray(alphas, float), np.asarray(losses, float)
    i0 = int(np.argmin(np.abs(a)))
    level = v[i0] + rise

    def edge(step):
        i = i0
        while 0 <= i + step < len(a) and v[i + step] <= level:
            i += step
        if not 0 <= i + step < len(a):
            return a[i]
        f = (level - v[i]) / (v[i + step] - v[i])
        return a[i] + f * (a[i + step] - a[i])

    return float(edge(1) - edge(-1))


def decayed_factor(step: int, steps: int, floor: float = 0.01) -> float:
    """The decaying baseline's step-size multiplier at ``step`` of ``steps``.

    1 for the first half, then linear down to ``floor`` at 90% of the steps, then ``floor``.

    >>> [round(decayed_factor(s, 100), 3) for s in (0, 50, 70, 90, 99)]
    [1.0, 1.0, 0.505, 0.01, 0.01]
    """
    t = step / steps
    if t <= 0.5:
        return 1.0
    if t >= 0.9:
        return floor
    return 1.0 - (1.0 - floor) * (t - 0.5) / 0.4


def swa_experiment(preset: SWAPreset, lr: float, *, emit: Emit | None = None,
                   stop: threading.Event | None = None) -> dict:
    """Train with constant step size ``lr``, average, and measure; a JSON-ready dict.

    The mean runs over the iterates from ``preset.swa.start`` on, every
    ``preset.swa.every`` steps; the measurements are those of the module docs.

    ``emit(datasets, done)`` receives the growing ``{"history": rows}``; ``done`` counts
    SGD steps. Keys of the result: ``status``, ``lr``, ``history``, and when finished
    ``swa``, ``sgd``, ``iterates`` and ``decayed`` (train/test loss, test accuracy,
    sharpness; ``decayed`` is the decaying-step-size baseline, or ``{"status":
    "diverged", ...}`` when it blew up),
    ``plane`` (``x``, ``y``, ``loss``, ``test_loss``, ``iterates``, ``swa``,
    ``swa_off_plane``) and ``slices`` (``alpha``, ``swa``, ``sgd``, ``width_swa``,
    ``width_sgd``, ``rise``); a divergence carries ``diverged``.
    """
    with single_thread():
        return _experiment(preset, lr, emit or (lambda d, n: None), stop)


def _experiment(preset: SWAPreset, lr: float, emit: Emit, stop) -> dict:
    net, sgd, swa = preset.net, preset.sgd, preset.swa
    data, model = net.build()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=sgd.momentum,
                          weight_decay=sgd.weight_decay)
    avg = WeightAverage(model, start=swa.start, every=swa.every)
    snaps = Snapshots(start=swa.start, every=swa.every)
    history: list[dict] = []

    def on_row(row):
        history.append({k: row.get(k) for k in ("step", "loss", "test_loss", "test_acc")})
        emit({"history": list(history)}, row["step"])

    run = fit(model, data, net.loss, opt, steps=sgd.steps, batch_size=sgd.batch_size,
              record_every=sgd.record_every, probes=[avg, snaps], callbacks=[on_row],
              stop=stop)
    result: dict = {"status": run.status, "lr": lr, "history": history}
    if run.status == "stopped":
        return result
    if run.status == "diverged":
        step, loss = run.diverged_at
        result["diverged"] = {"step": step, "loss": loss, "lr": lr, "stage": "SGD"}
        if sgd.momentum:  # heavy-ball SGD's edge is (2+2β)/η (divergence_text names it)
            result["diverged"]["momentum"] = sgd.momentum
        return result
    if len(snaps.params) < 3:
        raise ValueError(f"only {len(snaps.params)} iterates were averaged; lower swa.start="
                         f"{swa.start} or swa.every={swa.every}")
    obj = Objective(model, net.loss, data.x_train, data.y_train)
    points = (snaps.params, avg.params(),  # the iterates, their mean and the last one
              {k: v.detach().clone() for k, v in model.named_parameters()})
    result.update(_measure(obj, data, *points, preset.landscape))
    emit({}, sgd.steps)
    result.update(_geometry(obj, data, *points, preset.landscape))
    result["decayed"] = _decayed_baseline(preset, lr, obj, data, stop)
    return result


def _decayed_baseline(preset: SWAPreset, lr: float, obj: Objective, data, stop) -> dict:
    """SGD from the same initialisation with the decaying step size of :func:`decayed_factor`."""
    net, sgd = preset.net, preset.sgd
    model = net.build_model(data)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=sgd.momentum,
                          weight_decay=sgd.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: decayed_factor(step, sgd.steps))
    run = fit(model, data, net.loss, opt, steps=sgd.steps, scheduler=schedule,
              batch_size=sgd.batch_size, record_every=sgd.steps, stop=stop)
    if run.status != "finished":
        return {"status": run.status, "step": (run.diverged_at or [None])[0]}
    p = {k: v.detach().clone() for k, v in model.named_parameters()}
    train, test = obj.metrics(p), obj.metrics(p, data.x_test, data.y_test)
    return {"status": "finished", "train_loss": train["loss"], "test_loss": test["loss"],
            "test_acc": test.get("acc"), "sharpness": top_sharpness(obj, p)}


def _measure(obj: Objective, data, iterates, swa, sgd, spec: Landscape) -> dict:
    """Loss, test accuracy and sharpness at SWA, the last iterate and over the iterates."""
    def measure(p):
        train, test = obj.metrics(p), obj.metrics(p, data.x_test, data.y_test)
        return {"train_loss": train["loss"], "test_loss": test["loss"],
                "test_acc": test.get("acc"), "sharpness": top_sharpness(obj, p)}

    every = max(1, len(iterates) // spec.sharpness_iterates)
    per = [obj.metrics(p) for p in iterates]
    per_test = [obj.metrics(p, data.x_test, data.y_test) for p in iterates]
    return {"swa": measure(swa), "sgd": measure(sgd), "iterates": {
        "train_loss": float(np.mean([m["loss"] for m in per])),
        "test_loss": float(np.mean([m["loss"] for m in per_test])),
        "test_acc": float(np.mean([m.get("acc", np.nan) for m in per_test])),
        "sharpness": float(np.mean([top_sharpness(obj, p) for p in iterates[::every]])),
        "n": len(iterates)}}


def _geometry(obj: Objective, data, iterates, swa, sgd, spec: Landscape) -> dict:
    """The plane through three iterates and the 1-D slices at SWA and the last iterate."""
    mid = len(iterates) // 2
    plane = Plane.through(iterates[0], iterates[mid], iterates[-1])
    coords = plane.project(iterates).tolist()
    swa_xy = list(plane.coords(swa))
    xs, ys = plane.grid(spec.grid, margin=spec.margin, extra=coords)
    surface = plane.evaluate(obj, xs, ys, test=(data.x_test, data.y_test))
    alphas = np.linspace(-spec.slice_radius, spec.slice_radius, spec.slice_points).tolist()
    s_swa, s_sgd = mean_slice(obj, swa, alphas), mean_slice(obj, sgd, alphas)
    rise = spec.width_rise
    return {"plane": {"x": surface["x"], "y": surface["y"], "loss": surface["loss"],
                      "test_loss": surface["test_loss"], "iterates": coords, "swa": swa_xy,
                      "swa_off_plane": plane.distance(swa)},
            "slices": {"alpha": alphas, "swa": s_swa, "sgd": s_sgd,
                       "width_swa": flat_width(alphas, s_swa, rise),
                       "width_sgd": flat_width(alphas, s_sgd, rise), "rise": rise}}
