"""SAM's sharpness: its edge of stability, the rho sweep and m-sharpness.

Foret, Kleiner, Mobahi, Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving
Generalization", ICLR 2021 (arXiv 2010.01412); Andriushchenko, Flammarion, "Towards
Understanding Sharpness-Aware Minimization", ICML 2022 (arXiv 2206.06232); Long, Bartlett,
"Sharpness-Aware Minimization and the Edge of Stability", JMLR 2024 (arXiv 2309.12488).

**SAM's edge of stability.**  One SAM step with step size :math:`\\eta` and radius
:math:`\\rho` is :math:`w \\leftarrow w - \\eta \\nabla L(w + \\rho g/\\lVert g\\rVert)`,
:math:`g = \\nabla L(w)`.  On a local quadratic with Hessian :math:`H` the perturbed
gradient is :math:`g + \\rho H g / \\lVert g\\rVert`, so along an eigenvector of
eigenvalue :math:`\\lambda` (treating :math:`\\lVert g\\rVert` as locally fixed) a
deviation is multiplied by :math:`1 - \\eta\\lambda - \\eta\\rho\\lambda^2/\\lVert g\\rVert`.
It stays bounded iff :math:`\\eta\\lambda (1 + \\rho\\lambda/\\lVert g\\rVert) \\le 2`,
i.e. iff :math:`\\lambda` is at most the *SAM-edge*

.. math::

    \\lambda_{\\mathrm{SAM}} = \\frac{\\lVert g\\rVert}{2\\rho}
    \\Big(\\sqrt{1 + \\frac{8\\rho}{\\eta \\lVert g\\rVert}} - 1\\Big) < \\frac{2}{\\eta},

which tends to :math:`2/\\eta` as :math:`\\rho \\to 0` and falls as the gradient shrinks
(Long and Bartlett 2023; Bartlett, Long, Bousquet, arXiv 2210.01513, show the same
"bouncing across the ravine" on quadratics).  Full-batch SAM therefore does not hover at
:math:`2/\\eta` like GD (Cohen et al. 2021) but at this lower, moving edge.

**m-sharpness.**  With minibatches of :math:`B` examples, ``SAM(m=...)`` perturbs each
group of :math:`m` examples along its own gradient (:mod:`eoslab.optimizers.sam`); smaller :math:`m`
reduces sharpness more (Foret et al. section 4, Andriushchenko and Flammarion section 3).

:func:`sam_experiment` runs both parts of chapter 16 on a
:class:`~eoslab.chapters.ch16_sam.meta.SAMPreset` and returns a JSON-ready dict.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import torch

from eoslab.chapters.ch16_sam.meta import SAMPreset
from eoslab.core.netspec import NetSpec
from eoslab.core.train import fit
from eoslab.curvature.eigen import top_eigen
from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.objective import Objective
from eoslab.curvature.sharpness import SharpnessProbe
from eoslab.optimizers.sam import SAM, sam_edge
from eoslab.speed.threads import single_thread

__all__ = ["add_sam_edge", "final_sharpness", "sam_edge", "sam_experiment", "train_sam"]

Emit = Callable[[dict, int], None]


def add_sam_edge(history: Sequence[dict], lr: float, rho: float) -> list[dict]:
    """Rows with ``sam_edge`` (from each row's ``grad_norm``) and ``gd_edge`` = 2/eta."""
    out = []
    for row in history:
        row = dict(row)
        g = row.get("grad_norm")
        if g is not None and math.isfinite(g):
            row["sam_edge"] = sam_edge(float(g), lr, rho)
        row["gd_edge"] = 2.0 / lr
        out.append(row)
    return out


def train_sam(net: NetSpec, data, lr: float, rho: float, *, steps: int,
              batch_size: int | None = None, m: int | None = None,
              sharpness_every: int = 0, record_every: int = 10, callbacks=(),
              stop: threading.Event | None = None):
    """SAM around plain SGD/GD (``rho = 0`` is the base optimiser) on ``net``'s model."""
    model = net.build_model(data)
    base = torch.optim.SGD(model.parameters(), lr=lr)
    opt = SAM(base, rho=rho, m=m)
    probes = [SharpnessProbe(every=sharpness_every)] if sharpness_every else []
    run = fit(model, data, net.loss, opt, steps=steps, batch_size=batch_size,
              record_every=record_every, probes=probes, callbacks=callbacks, stop=stop)
    return model, run


def final_sharpness(model, data, loss: str, tol: float = 1e-3) -> float:
    """:math:`\\lambda_{\\max}` of the full-batch training loss at the model's weights."""
    obj = Objective(model, loss, data.x_train, data.y_train)
    return float(top_eigen(HessianOperator(obj), tol=tol).values[0])


def sam_experiment(preset: SAMPreset, lr: float, rho: float, *, emit: Emit | None = None,
                   stop: threading.Event | None = None) -> dict:
    """Chapter 16's two parts on ``preset``; a JSON-ready dict.

    Full-batch SAM with step size ``lr`` and radius ``rho`` times each of
    ``preset.full_batch.rho_ratios`` (sharpness against GD's 2/eta and the SAM-edge),
    then minibatch SAM (``preset.minibatch``) for each ``m`` of its ``m_values``
    (``m = 0``: plain SGD), recording the final full-batch sharpness and test accuracy.
    ``emit(datasets, done)`` receives ``{"runs": {rho: rows}}`` while the full-batch runs
    train and ``{"m_runs": rows}`` after each minibatch run; ``done`` counts steps.
    Keys of the result: ``status``, ``lr``, ``rho``, ``runs`` (rows with ``sam_edge`` and
    ``gd_edge``, by radius as a string) and ``m_runs``; a divergence carries ``diverged``.
    """
    with single_thread():
        return _experiment(preset, lr, rho, emit or (lambda d, n: None), stop)


def _diverged(result: dict, run, lr: float, stage: str) -> dict:
    step, loss = run.diverged_at
    return {**result, "status": "diverged",
            "diverged": {"step": step, "loss": loss, "lr": lr, "stage": stage}}


def _experiment(preset: SAMPreset, lr: float, rho: float, emit: Emit, stop) -> dict:
    data = preset.net.load_data()
    result: dict = {"status": "finished", "lr": lr, "rho": rho, "runs": {}, "m_runs": []}
    early = _full_batch_runs(preset, data, lr, rho, result, emit, stop)
    if early is not None:
        return early
    return _minibatch_runs(preset, data, result, emit, stop)


def _full_batch_runs(preset: SAMPreset, data, lr, rho, result, emit, stop) -> dict | None:
    """GD and full-batch SAM into ``result["runs"]``; an early result or ``None``."""
    spec = preset.full_batch
    for i, ratio in enumerate(spec.rho_ratios):
        r = round(rho * ratio, 6)
        rows: list[dict] = []

        def on_row(row, rows=rows, r=r, offset=i * spec.steps):
            rows.append(add_sam_edge([row], lr, r)[0])
            emit({"runs": {**result["runs"], str(r): rows}}, offset + row["step"])

        _, run = train_sam(preset.net, data, lr, r, steps=spec.steps,
                           sharpness_every=spec.sharpness_every,
                           record_every=spec.record_every, callbacks=[on_row], stop=stop)
        result["runs"][str(r)] = add_sam_edge(run.history, lr, r)
        if run.status == "stopped":
            return {**result, "status": "stopped"}
        if run.status == "diverged":
            return _diverged(result, run, lr, f"full-batch SAM (ρ = {r:g})")
    return None


def _minibatch_runs(preset: SAMPreset, data, result, emit, stop) -> dict:
    """SGD and minibatch SAM for each ``m`` into ``result["m_runs"]``."""
    spec, loss = preset.minibatch, preset.net.loss
    done = len(preset.full_batch.rho_ratios) * preset.full_batch.steps
    for m in spec.m_values:  # m = 0: plain SGD, the baseline
        model, run = train_sam(preset.net, data, spec.lr, spec.rho if m else 0.0,
                               steps=spec.steps, batch_size=spec.batch_size, m=m or None,
                               record_every=spec.steps, stop=stop)
        done += spec.steps
        if run.status == "stopped":
            return {**result, "status": "stopped"}
        if run.status == "diverged":
            return _diverged(result, run, spec.lr,
                             f"minibatch SAM (m = {m})" if m else "SGD")
        last = run.history[-1]
        result["m_runs"].append({"m": m, "sharpness": final_sharpness(model, data, loss),
                                 "loss": last["loss"], "test_acc": last.get("test_acc"),
                                 "test_loss": last.get("test_loss")})
        emit({"m_runs": list(result["m_runs"])}, done)
    return result
