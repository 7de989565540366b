"""One full-batch training run with probes, as the chapters 03-05 apps and tests use it.

:func:`probe_run` builds the data and model a preset names, trains with plain GD
(``torch.optim.SGD``) or normalised GD (:class:`~eoslab.optimizers.normalized.NormalizedGD`) through
:func:`eoslab.core.train.fit` with the given probes, and returns a JSON-ready dict that a
:class:`~eoslab.ui.staged.StagedApp` stores and shows: ``status``, ``history`` (the
rows), ``seconds`` and, if the run blew up, ``diverged`` with its step, loss and lr.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence

import torch

from eoslab.core.data import load_dataset
from eoslab.core.models import build_model
from eoslab.core.train import fit
from eoslab.optimizers.normalized import NormalizedGD

__all__ = ["OPTIMIZERS", "probe_run"]

OPTIMIZERS = ("gd", "ngd")


def _clean(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        out[k] = v
    return out


def probe_run(values: Mapping, lr: float, *, optimizer: str = "gd", loss: str | None = None,
              probes: Sequence[Callable] = (), stop: threading.Event | None = None,
              on_row: Callable[[dict], None] | None = None, steps: int | None = None,
              stage: str = "GD") -> dict:
    """Train the preset's net with ``optimizer`` at step size ``lr``; see the module docs.

    ``values`` needs ``dataset``, ``n_train``, ``model``, ``width``, ``depth``, ``steps``,
    ``record_every`` and may give ``loss`` (default ``"mse"``), ``dtype``, ``model_seed``.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r} is not allowed; allowed: "
                         f"{', '.join(OPTIMIZERS)}")
    loss = loss or values.get("loss", "mse")
    data = load_dataset(values["dataset"], n_train=values["n_train"], loss=loss,
                        dtype=values.get("dtype", "float32"), device=values.get("device"))
    model = build_model(values["model"], data.input_shape, data.n_outputs,
                        width=values["width"], depth=values["depth"],
                        seed=values.get("model_seed", 0), device=data.x_train.device,
                        dtype=values.get("dtype", "float32"))
    opt = (NormalizedGD(model.parameters(), lr=lr) if optimizer == "ngd"
           else torch.optim.SGD(model.parameters(), lr=lr))
    history: list[dict] = []

    def collect(row):
        row = _clean(row)
        history.append(row)
        if on_row is not None:
            on_row(row)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small nets: one thread avoids OpenMP oversubscription stalls
    try:
        run = fit(model, data, loss, opt, steps=steps or values["steps"],
                  record_every=values["record_every"], probes=probes, callbacks=[collect],
                  stop=stop, eval_test=False)
    finally:
        torch.set_num_threads(threads)
    result = {"status": run.status, "history": history, "seconds": run.seconds,
              "lr": lr, "optimizer": optimizer, "loss": loss}
    if run.diverged:
        step, value = run.diverged_at
        result["diverged"] = {"step": step, "loss": value if math.isfinite(value) else 1e308,
                              "lr": lr, "stage": stage}
    return result
