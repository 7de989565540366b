"""The mode-connectivity experiment: two minima, the straight line, a trained curve, FGE.

Garipov, Izmailov, Podoprikhin, Vetrov, Wilson, "Loss Surfaces, Mode Connectivity, and
Fast Ensembling of DNNs", NeurIPS 2018 (arXiv 1802.10026).

1. Two networks :math:`w_1, w_2` are trained from different initialisations.
2. On the segment :math:`(1-t)w_1 + t w_2` the loss rises far above its ends; the
   *barrier* is :math:`\\max_t [L(t) - ((1-t)L(0) + tL(1))]` (:func:`eoslab.geometry.curves.barrier`).
3. A Bézier (or polygonal) curve with one bend :math:`b` is trained to minimise
   :math:`\\mathbb E_{t\\sim U[0,1]} L(\\phi_b(t))` (:mod:`eoslab.geometry.curves`); its barrier is
   close to zero.
4. The plane through :math:`w_1, w_2, b` (:class:`eoslab.geometry.plane.Plane`) contains the whole
   curve (each point is a convex combination of the three), so the curve, the segment and
   the loss landscape between them can be drawn on one picture.
5. Fast geometric ensembling (FGE): from :math:`w_1`, SGD with a cyclical (triangular)
   step size (peak ``fge_lr_ratio`` times the step size, low 1% of the peak); a snapshot at each low point of the cycle; the ensemble averages the
   snapshots' softmax outputs (:func:`eoslab.optimizers.averaging.evaluate_ensemble`).

:func:`mode_connectivity` runs the whole pipeline and returns a JSON-ready dict.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

import torch

from eoslab.core.data import load_dataset
from eoslab.core.models import build_model
from eoslab.core.optim import make_scheduler
from eoslab.core.train import fit
from eoslab.curvature.objective import Objective
from eoslab.geometry.curves import Curve, barrier, evaluate_curve, train_curve
from eoslab.geometry.landscape import interpolate
from eoslab.geometry.plane import Plane
from eoslab.optimizers.averaging import Snapshots, evaluate_ensemble
from eoslab.speed.threads import single_thread

__all__ = [
    "curve_in_plane",
    "ensemble_table",
    "fge_snapshots",
    "mode_connectivity",
    "train_solution",
]

Params = dict[str, torch.Tensor]
Emit = Callable[[dict, int], None]


def _params(model) -> Params:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def train_solution(data, values: Mapping, seed: int, lr: float, *, steps: int | None = None,
                   callbacks=(), stop: threading.Event | None = None):
    """Train ``values["model"]`` from init ``seed`` with SGD + momentum (and
    ``values["weight_decay"]``); returns ``(model, Run)``.
    """
    model = build_model(values["model"], data.input_shape, data.n_outputs,
                        width=values["width"], depth=values["depth"], seed=seed,
                        device=data.x_train.device, dtype=data.x_train.dtype)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=values.get("momentum", 0.9),
                          weight_decay=values.get("weight_decay", 0.0))
    run = fit(model, data, values["loss"], opt, steps=steps or values["steps"],
              batch_size=values["batch_size"], record_every=values.get("record_every", 20),
              callbacks=callbacks, stop=stop, seed=seed, eval_test=False)
    return model, run


def fge_snapshots(model, data, loss: str, lr: float, *, cycle: int, cycles: int,
                  batch_size: int, low_ratio: float = 0.01, momentum: float = 0.9,
                  weight_decay: float = 5e-3, callbacks=(),
                  stop: threading.Event | None = None, seed: int = 0):
    """FGE from ``model``'s weights: triangular step size between ``low_ratio * lr`` and
    ``lr`` with period ``cycle`` steps, a snapshot at each of the ``cycles`` low points.
    Weight decay keeps the cross-entropy from flattening out at zero loss, so the cycles
    keep moving the weights (the paper trains with weight decay throughout).

    Returns ``(snapshots, Run)`` where ``snapshots`` is a list of parameter dicts.
    """
    if cycle < 2 or cycle % 2:
        raise ValueError(f"cycle={cycle!r} is not allowed; use an even number of steps >= 2")
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                          weight_decay=weight_decay)
    sched = make_scheduler("triangular", opt, cycle * cycles,
                           {"base_lr": low_ratio * lr, "step_size_up": cycle // 2})
    snaps = Snapshots(start=cycle, every=cycle)
    run = fit(model, data, loss, opt, steps=cycle * cycles, scheduler=sched,
              batch_size=batch_size, record_every=max(cycle // 4, 1), probes=[snaps],
              callbacks=callbacks, stop=stop, seed=seed, eval_test=False,
              divergence_factor=1e6)  # starts at a minimum: a spike is not a divergence
    return snaps.params, run


def ensemble_table(model, members: Sequence[Params], loss, x, y) -> list[dict]:
    """Per ``k``: test accuracy of snapshot ``k`` alone and of the ensemble of the first ``k``."""
    out = []
    for k in range(1, len(members) + 1):
        single = evaluate_ensemble(model, [members[k - 1]], loss, x, y)
        joint = evaluate_ensemble(model, members[:k], loss, x, y)
        out.append({"k": k, "single_acc": single["acc"], "ensemble_acc": joint["acc"],
                    "single_loss": single["loss"], "ensemble_loss": joint["loss"]})
    return out


def curve_in_plane(curve: Curve, plane: Plane, ts) -> list[list[float]]:
    """Plane coordinates of :math:`\\phi(t)` for each ``t``."""
    with torch.no_grad():
        pts = [{k: v.detach() for k, v in curve.point(float(t)).items()} for t in ts]
    return plane.project(pts).tolist()


def _diverged(run, stage: str, lr: float) -> dict:
    step, value = run.diverged_at
    return {"status": "diverged", "diverged": {"step": step, "loss": value, "lr": lr,
                                               "stage": stage}}


def mode_connectivity(values: Mapping, lr: float, kind: str = "bezier", *,
                      emit: Emit | None = None, stop: threading.Event | None = None) -> dict:
    """Run the chapter's pipeline (module docs) with step size ``lr``; a JSON-ready dict.

    ``values`` holds dataset, n_train, model, width, depth, loss, batch_size, steps,
    curve_steps, grid, fge_cycle, fge_cycles (see :mod:`eoslab.chapters.ch14_mode_connectivity.meta`).
    Keys of the result: ``status``, ``line``/``curve`` (``t``, ``loss``, ``test_acc``),
    ``barrier_line``, ``barrier_curve``, ``plane`` (``x``, ``y``, ``loss``, ``anchors``,
    ``curve``), ``fge`` (:func:`ensemble_table` rows) and ``training`` (loss rows).
    """
    emit = emit or (lambda datasets, done: None)
    with single_thread():
        return _pipeline(values, lr, kind, emit, stop)


def _pipeline(values, lr, kind, emit, stop) -> dict:
    data = load_dataset(values["dataset"], n_train=values.get("n_train"), loss=values["loss"],
                        device="cpu")
    test = (data.x_test, data.y_test)
    training: list[dict] = []
    done = [0]

    def watcher(stage: str, offset: int):
        def on_row(row):
            training.append({"stage": stage, "step": row["step"] + offset,
                             "loss": row["loss"]})
            done[0] = row["step"] + offset
            emit({"training": list(training)}, done[0])
        return on_row

    result: dict = {"status": "finished", "lr": lr, "kind": kind}
    ends = []
    for i, seed in enumerate((0, 1)):
        model, run = train_solution(data, values, seed, lr, stop=stop,
                                    callbacks=[watcher(f"w{i + 1}", i * values["steps"])])
        if run.status == "diverged":
            return {**result, **_diverged(run, f"SGD towards w{i + 1}", lr), "training": training}
        if run.status == "stopped":
            return {**result, "status": "stopped"}
        ends.append(_params(model))
    obj = Objective(model, values["loss"], data.x_train, data.y_train)
    ts = torch.linspace(0, 1, values.get("path_points", 21))
    line = interpolate(obj, ends[0], ends[1], ts, test=test)
    result["line"] = {k: line[k] for k in ("t", "loss", "test_acc")}
    result["barrier_line"] = barrier(line["loss"])
    emit({"line": result["line"]}, done[0])

    curve = Curve(ends[0], ends[1], n_bends=1, kind=kind)
    offset = 2 * values["steps"]

    def on_curve(row):
        training.append({"stage": "curve", "step": row["step"] + offset, "loss": row["loss"]})
        emit({"training": list(training)}, row["step"] + offset)

    rows = train_curve(curve, obj, steps=values["curve_steps"], lr=lr,
                       batch_size=values["batch_size"], momentum=values.get("momentum", 0.9),
                       record_every=values.get("record_every", 20), callback=on_curve,
                       stop=stop)
    if stop is not None and stop.is_set():
        return {**result, "status": "stopped"}
    bad = [r for r in rows if not torch.isfinite(torch.tensor(r["loss"])) or r["loss"] > 1e3 *
           max(rows[0]["loss"], line["loss"][len(line["loss"]) // 2])]
    if bad:
        return {**result, "status": "diverged", "training": training,
                "diverged": {"step": bad[0]["step"], "loss": bad[0]["loss"], "lr": lr,
                             "stage": "SGD on the curve's bend"}}
    along = evaluate_curve(curve, obj, ts, test=test)
    result["curve"] = {k: along[k] for k in ("t", "loss", "test_acc")}
    result["barrier_curve"] = barrier(along["loss"])

    bend = curve.unflatten(curve.bends[0].detach())
    plane = Plane.through(ends[0], ends[1], bend)
    xs, ys = plane.grid(values["grid"], margin=0.2)
    surface = plane.evaluate(obj, xs, ys)
    result["plane"] = {"x": surface["x"], "y": surface["y"], "loss": surface["loss"],
                       "anchors": [list(a) for a in plane.anchors],
                       "curve": curve_in_plane(curve, plane, ts.tolist()),
                       "off_plane": max(plane.distance(curve.point(float(t)))
                                        for t in (0.25, 0.5, 0.75))}
    emit({}, offset + values["curve_steps"])

    fge_model = build_model(values["model"], data.input_shape, data.n_outputs,
                            width=values["width"], depth=values["depth"], seed=0)
    with torch.no_grad():
        for name, p in fge_model.named_parameters():
            p.copy_(ends[0][name])
    offset += values["curve_steps"]
    snaps, run = fge_snapshots(fge_model, data, values["loss"],
                               lr * values.get("fge_lr_ratio", 5.0),
                               cycle=values["fge_cycle"], cycles=values["fge_cycles"],
                               batch_size=values["batch_size"], stop=stop,
                               weight_decay=values.get("weight_decay", 5e-3),
                               callbacks=[watcher("FGE", offset)])
    if run.status == "diverged":
        return {**result, **_diverged(run, "FGE", lr * values.get("fge_lr_ratio", 5.0)),
                "training": training}
    if run.status == "stopped" or not snaps:
        return {**result, "status": "stopped"}
    result["fge"] = ensemble_table(fge_model, snaps, values["loss"], *test)
    result["training"] = training
    return result
