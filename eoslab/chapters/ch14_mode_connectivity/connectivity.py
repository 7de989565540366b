"""The mode-connectivity experiment: two minima, the straight line, a trained curve, FGE.

Garipov, Izmailov, Podoprikhin, Vetrov, Wilson, "Loss Surfaces, Mode Connectivity, and
Fast Ensembling of DNNs", NeurIPS 2018 (arXiv 1802.10026).

1. Two networks :math:`w_1, w_2` are trained from different initialisations.
2. On the segment :math:`(1-t)w_1 + t w_2` the loss rises far above its ends; the
   *barrier* is :math:`\\max_t [L(t) - ((1-t)L(0) + tL(1))]`
   (:func:`eoslab.geometry.curves.barrier`).
3. A Bézier (or polygonal) curve with one bend :math:`b` is trained to minimise
   :math:`\\mathbb E_{t\\sim U[0,1]} L(\\phi_b(t))` (:mod:`eoslab.geometry.curves`); its barrier is
   close to zero.
4. The plane through :math:`w_1, w_2, b` (:class:`eoslab.geometry.plane.Plane`) contains the whole
   curve (each point is a convex combination of the three), so the curve, the segment and
   the loss landscape between them can be drawn on one picture.
5. Fast geometric ensembling (FGE): from :math:`w_1`, SGD with a cyclical (triangular)
   step size (peak ``fge.lr_ratio`` times the step size, low 1% of the peak); a snapshot
   at each low point of the cycle; the ensemble averages the snapshots' softmax outputs
   (:func:`eoslab.optimizers.averaging.evaluate_ensemble`).

:func:`mode_connectivity` runs the whole pipeline on a
:class:`~eoslab.chapters.ch14_mode_connectivity.meta.ModeConnectivityPreset` and returns a
JSON-ready dict.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import torch

from eoslab.chapters.ch14_mode_connectivity.meta import ModeConnectivityPreset
from eoslab.chapters.presets import MomentumSGD
from eoslab.core.netspec import NetSpec
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


def train_solution(data, net: NetSpec, sgd: MomentumSGD, seed: int, lr: float, *,
                   steps: int | None = None, callbacks=(),
                   stop: threading.Event | None = None):
    """Train ``net`` from init ``seed``; returns ``(model, Run)``.

    SGD with the momentum, weight decay and batch size of ``sgd``, for ``steps`` (default
    ``sgd.steps``).
    """
    model = net.build_model(data, seed=seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=sgd.momentum,
                          weight_decay=sgd.weight_decay)
    run = fit(model, data, net.loss, opt, steps=steps or sgd.steps,
              batch_size=sgd.batch_size, record_every=sgd.record_every,
              callbacks=callbacks, stop=stop, seed=seed, eval_test=False)
    return model, run


def fge_snapshots(model, data, loss: str, lr: float, *, cycle: int, cycles: int,
                  batch_size: int, low_ratio: float = 0.01, momentum: float = 0.9,
                  weight_decay: float = 5e-3, callbacks=(),
                  stop: threading.Event | None = None, seed: int = 0):
    """FGE from ``model``'s weights; returns ``(snapshots, Run)``.

    A triangular step size between ``low_ratio * lr`` and ``lr`` with period ``cycle``
    steps, a snapshot (a parameter dict) at each of the ``cycles`` low points. Weight
    decay keeps the cross-entropy from flattening out at zero loss, so the cycles keep
    moving the weights (the paper trains with weight decay throughout).
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


def _diverged_info(step: int, loss: float, lr: float, stage: str, momentum: float) -> dict:
    """``result["diverged"]``; heavy-ball β > 0 is named, its edge is (2+2β)/η."""
    info = {"step": step, "loss": loss, "lr": lr, "stage": stage}
    return {**info, "momentum": momentum} if momentum else info


def _diverged(run, stage: str, lr: float, momentum: float = 0.0) -> dict:
    step, value = run.diverged_at
    return {"status": "diverged", "diverged": _diverged_info(step, value, lr, stage, momentum)}


def mode_connectivity(preset: ModeConnectivityPreset, lr: float, kind: str = "bezier", *,
                      emit: Emit | None = None, stop: threading.Event | None = None) -> dict:
    """Run the chapter's pipeline (module docs) with step size ``lr`` and curve ``kind``.

    ``preset`` gives the network (``net``), the SGD runs (``sgd``), the curve
    (``curve``) and FGE (``fge``). ``emit(datasets, done)`` receives the growing
    ``{"training": rows}`` and then ``{"line": ...}``; ``done`` counts the SGD steps.
    Keys of the JSON-ready result: ``status``, ``line``/``curve`` (``t``, ``loss``,
    ``test_acc``), ``barrier_line``, ``barrier_curve``, ``plane`` (``x``, ``y``,
    ``loss``, ``anchors``, ``curve``, ``off_plane``), ``fge`` (:func:`ensemble_table`
    rows) and ``training`` (loss rows); a divergence carries ``diverged``.
    """
    emit = emit or (lambda datasets, done: None)
    with single_thread():
        return _Pipeline(preset, lr, kind, emit, stop).run()


class _Pipeline:
    """The stages of :func:`mode_connectivity`; each returns an early result or ``None``."""

    def __init__(self, preset: ModeConnectivityPreset, lr: float, kind: str, emit: Emit,
                 stop: threading.Event | None):
        self.p, self.lr, self.emit, self.stop = preset, lr, emit, stop
        self.data = preset.net.load_data()
        self.test = (self.data.x_test, self.data.y_test)
        self.ts = torch.linspace(0, 1, preset.curve.path_points)
        self.training: list[dict] = []
        self.done = 0
        self.result: dict = {"status": "finished", "lr": lr, "kind": kind}

    def run(self) -> dict:
        for stage in (self._minima, self._curve, self._fge):
            early = stage()
            if early is not None:
                return early
        self.result["training"] = self.training
        return self.result

    def _watcher(self, stage: str, offset: int):
        def on_row(row):
            self.training.append({"stage": stage, "step": row["step"] + offset,
                                  "loss": row["loss"]})
            self.done = row["step"] + offset
            self.emit({"training": list(self.training)}, self.done)
        return on_row

    def _stopped(self) -> dict:
        return {**self.result, "status": "stopped"}

    def _minima(self) -> dict | None:
        """Train w1 and w2 from seeds ``net.model_seed`` and the next; the segment's loss."""
        self.ends = []
        steps = self.p.sgd.steps
        first = self.p.net.model_seed
        for i, seed in enumerate((first, first + 1)):
            model, run = train_solution(self.data, self.p.net, self.p.sgd, seed, self.lr,
                                        stop=self.stop,
                                        callbacks=[self._watcher(f"w{i + 1}", i * steps)])
            if run.status == "diverged":
                return {**self.result, **_diverged(run, f"SGD towards w{i + 1}", self.lr,
                                                   self.p.sgd.momentum),
                        "training": self.training}
            if run.status == "stopped":
                return self._stopped()
            self.ends.append(_params(model))
        self.obj = Objective(model, self.p.net.loss, self.data.x_train, self.data.y_train)
        self.line = interpolate(self.obj, self.ends[0], self.ends[1], self.ts, test=self.test)
        self.result["line"] = {k: self.line[k] for k in ("t", "loss", "test_acc")}
        self.result["barrier_line"] = barrier(self.line["loss"])
        self.emit({"line": self.result["line"]}, self.done)
        return None

    def _curve(self) -> dict | None:
        """Train the bend; the loss along the curve and on the plane that holds it."""
        curve = Curve(self.ends[0], self.ends[1], n_bends=1, kind=self.result["kind"])
        offset, spec, sgd = 2 * self.p.sgd.steps, self.p.curve, self.p.sgd

        def on_curve(row):
            self.training.append({"stage": "curve", "step": row["step"] + offset,
                                  "loss": row["loss"]})
            self.emit({"training": list(self.training)}, row["step"] + offset)

        rows = train_curve(curve, self.obj, steps=spec.steps, lr=self.lr,
                           batch_size=sgd.batch_size, momentum=sgd.momentum,
                           record_every=sgd.record_every, callback=on_curve, stop=self.stop)
        if self.stop is not None and self.stop.is_set():
            return self._stopped()
        loss = self.line["loss"]
        bad = [r for r in rows if not torch.isfinite(torch.tensor(r["loss"])) or r["loss"] > 1e3 *
               max(rows[0]["loss"], loss[len(loss) // 2])]
        if bad:
            return {**self.result, "status": "diverged", "training": self.training,
                    "diverged": _diverged_info(bad[0]["step"], bad[0]["loss"], self.lr,
                                               "SGD on the curve's bend", sgd.momentum)}
        along = evaluate_curve(curve, self.obj, self.ts, test=self.test)
        self.result["curve"] = {k: along[k] for k in ("t", "loss", "test_acc")}
        self.result["barrier_curve"] = barrier(along["loss"])
        self.result["plane"] = self._plane(curve)
        self.emit({}, offset + spec.steps)
        return None

    def _plane(self, curve: Curve) -> dict:
        bend = curve.unflatten(curve.bends[0].detach())
        plane = Plane.through(self.ends[0], self.ends[1], bend)
        xs, ys = plane.grid(self.p.curve.grid, margin=0.2)
        surface = plane.evaluate(self.obj, xs, ys)
        return {"x": surface["x"], "y": surface["y"], "loss": surface["loss"],
                "anchors": [list(a) for a in plane.anchors],
                "curve": curve_in_plane(curve, plane, self.ts.tolist()),
                "off_plane": max(plane.distance(curve.point(float(t)))
                                 for t in (0.25, 0.5, 0.75))}

    def _fge(self) -> dict | None:
        """FGE from w1 with a cyclical step size; the ensemble table of its snapshots."""
        net, fge = self.p.net, self.p.fge
        model = net.build_model(self.data)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(self.ends[0][name])
        offset = 2 * self.p.sgd.steps + self.p.curve.steps
        lr = self.lr * fge.lr_ratio
        snaps, run = fge_snapshots(model, self.data, net.loss, lr, cycle=fge.cycle,
                                   cycles=fge.cycles, batch_size=self.p.sgd.batch_size,
                                   momentum=self.p.sgd.momentum, stop=self.stop,
                                   weight_decay=self.p.sgd.weight_decay,
                                   callbacks=[self._watcher("FGE", offset)])
        if run.status == "diverged":
            return {**self.result, **_diverged(run, "FGE", lr, self.p.sgd.momentum),
                    "training": self.training}
        if run.status == "stopped" or not snaps:
            return self._stopped()
        self.result["fge"] = ensemble_table(model, snaps, net.loss, *self.test)
        return None
