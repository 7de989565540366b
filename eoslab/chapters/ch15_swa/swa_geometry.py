"""Where SWA lands: SGD iterates on the rim of a basin, their average near its centre.

Izmailov, Podoprikhin, Garipov, Vetrov, Wilson, "Averaging Weights Leads to Wider Optima
and Better Generalization", UAI 2018 (arXiv 1803.05407).

SGD with a constant (high) step size does not settle: its iterates :math:`w_{t_i}` keep
bouncing on the walls of a wide, flat region.  Their running mean

.. math:: w_{\\mathrm{SWA}} = \\frac1n \\sum_{i=1}^n w_{t_i}

(:class:`eoslab.optimizers.averaging.WeightAverage`, i.e. ``torch.optim.swa_utils.AveragedModel``) lies
near the centre of that region.  :func:`swa_experiment` trains once, collects the
iterates, and measures the picture of the paper:

* the plane through three iterates (first, middle, last), with the train loss on it and
  every iterate and the SWA point projected onto it (:class:`eoslab.geometry.plane.Plane`);
* train and test loss / accuracy at SWA, at the last SGD iterate and averaged over the
  iterates;
* flatness: the top Hessian eigenvalue (:mod:`eoslab.curvature.eigen`) and 1-D slices
  :math:`L(w + \\alpha d)` along filter-normalised random directions (Li et al. 2018,
  :mod:`eoslab.geometry.directions`), as in the paper's section 3.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

import numpy as np
import torch

from eoslab.core.data import load_dataset
from eoslab.core.models import build_model
from eoslab.core.train import fit
from eoslab.curvature.eigen import top_eigen
from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.objective import Objective
from eoslab.geometry.directions import filter_normalize, random_direction
from eoslab.geometry.landscape import slice_1d
from eoslab.geometry.plane import Plane
from eoslab.optimizers.averaging import Snapshots, WeightAverage
from eoslab.speed.threads import single_thread

__all__ = ["flat_width", "mean_slice", "swa_experiment", "top_sharpness"]

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
    """Width of the interval around ``alpha = 0`` where the loss stays below
    ``losses(0) + rise`` (linear interpolation between grid points).

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


def swa_experiment(values: Mapping, lr: float, *, emit: Emit | None = None,
                   stop: threading.Event | None = None) -> dict:
    """Train with constant step size ``lr``, average from ``values["swa_start"]`` every
    ``values["swa_every"]`` steps, and measure (module docs); a JSON-ready dict.
    """
    with single_thread():
        return _experiment(values, lr, emit or (lambda d, n: None), stop)


def _experiment(values, lr, emit, stop) -> dict:
    data = load_dataset(values["dataset"], n_train=values.get("n_train"), loss=values["loss"],
                        device="cpu")
    model = build_model(values["model"], data.input_shape, data.n_outputs,
                        width=values["width"], depth=values["depth"], seed=0,
                        device="cpu", dtype=data.x_train.dtype)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=values.get("momentum", 0.9),
                          weight_decay=values.get("weight_decay", 0.0))
    avg = WeightAverage(model, start=values["swa_start"], every=values["swa_every"])
    snaps = Snapshots(start=values["swa_start"], every=values["swa_every"])
    history: list[dict] = []

    def on_row(row):
        history.append({k: row.get(k) for k in ("step", "loss", "test_loss", "test_acc")})
        emit({"history": list(history)}, row["step"])

    run = fit(model, data, values["loss"], opt, steps=values["steps"],
              batch_size=values["batch_size"], record_every=values["record_every"],
              probes=[avg, snaps], callbacks=[on_row], stop=stop)
    result: dict = {"status": run.status, "lr": lr, "history": history}
    if run.status == "stopped":
        return result
    if run.status == "diverged":
        step, loss = run.diverged_at
        result["diverged"] = {"step": step, "loss": loss, "lr": lr, "stage": "SGD"}
        return result
    if len(snaps.params) < 3:
        raise ValueError(f"only {len(snaps.params)} iterates were averaged; lower swa_start="
                         f"{values['swa_start']} or swa_every={values['swa_every']}")
    obj = Objective(model, values["loss"], data.x_train, data.y_train)
    iterates = snaps.params
    swa = avg.params()
    sgd = {k: v.detach().clone() for k, v in model.named_parameters()}  # the last iterate

    def measure(p):
        train, test = obj.metrics(p), obj.metrics(p, data.x_test, data.y_test)
        return {"train_loss": train["loss"], "test_loss": test["loss"],
                "test_acc": test.get("acc"), "sharpness": top_sharpness(obj, p)}

    result["swa"], result["sgd"] = measure(swa), measure(sgd)
    every = max(1, len(iterates) // values.get("sharpness_iterates", 5))
    per = [obj.metrics(p) for p in iterates]
    per_test = [obj.metrics(p, data.x_test, data.y_test) for p in iterates]
    result["iterates"] = {
        "train_loss": float(np.mean([m["loss"] for m in per])),
        "test_loss": float(np.mean([m["loss"] for m in per_test])),
        "test_acc": float(np.mean([m.get("acc", np.nan) for m in per_test])),
        "sharpness": float(np.mean([top_sharpness(obj, p) for p in iterates[::every]])),
        "n": len(iterates)}
    emit({}, values["steps"])

    mid = len(iterates) // 2
    plane = Plane.through(iterates[0], iterates[mid], iterates[-1])
    coords = plane.project(iterates).tolist()
    swa_xy = list(plane.coords(swa))
    xs, ys = plane.grid(values["grid"], margin=values.get("margin", 0.3), extra=coords)
    surface = plane.evaluate(obj, xs, ys, test=(data.x_test, data.y_test))
    result["plane"] = {"x": surface["x"], "y": surface["y"], "loss": surface["loss"],
                       "test_loss": surface["test_loss"], "iterates": coords, "swa": swa_xy,
                       "swa_off_plane": plane.distance(swa)}
    alphas = np.linspace(-values["slice_radius"], values["slice_radius"],
                         values.get("slice_points", 21)).tolist()
    s_swa, s_sgd = mean_slice(obj, swa, alphas), mean_slice(obj, sgd, alphas)
    rise = values.get("width_rise", 0.05)
    result["slices"] = {"alpha": alphas, "swa": s_swa, "sgd": s_sgd,
                        "width_swa": flat_width(alphas, s_swa, rise),
                        "width_sgd": flat_width(alphas, s_sgd, rise), "rise": rise}
    return result
