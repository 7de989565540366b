"""One full-batch training run with probes, as the chapters 03-05 experiments use it.

A chapter names its problem with a :class:`~eoslab.core.netspec.NetSpec` (the data set, how
many training examples, and the network); :func:`probe_run` builds it and trains the model
with plain GD (``torch.optim.SGD``) or normalised GD
(:class:`~eoslab.optimizers.normalized.NormalizedGD`) through :func:`eoslab.core.train.fit`
with the given probes, and returns a JSON-ready dict: ``status``, ``history`` (the rows),
``seconds`` and, if the run blew up, ``diverged`` with its step, loss, lr and stage.

Example:
    >>> from eoslab.core.netspec import NetSpec
    >>> net = NetSpec(dataset="moons", n_train=16, model="fc-tanh", width=8, depth=1)
    >>> out = probe_run(net, 0.1, steps=4, record_every=2)
    >>> out["status"], [row["step"] for row in out["history"]]
    ('finished', [0, 2, 4])
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import torch

from eoslab.core.netspec import NetSpec
from eoslab.core.train import fit
from eoslab.optimizers.normalized import NormalizedGD

__all__ = ["OPTIMIZERS", "probe_run"]

OPTIMIZERS = ("gd", "ngd")


def _clean(row: dict) -> dict:
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in row.items()}


def probe_run(net: NetSpec, lr: float, *, steps: int, record_every: int, optimizer: str = "gd",
              loss: str | None = None, probes: Sequence[Callable] = (),
              stop: threading.Event | None = None,
              on_row: Callable[[dict], None] | None = None, stage: str = "GD") -> dict:
    """Train ``net``'s model with ``optimizer`` at step size ``lr``; see the module docs.

    Args:
        net: the data and the network.
        lr: the step size :math:`\\eta`.
        steps: length of the run.
        record_every: the history's cadence in steps.
        optimizer: ``"gd"`` or ``"ngd"`` (normalised GD).
        loss: the training loss (and the targets' encoding), default ``net.loss``.
        probes: :func:`eoslab.core.train.fit` probes (with attribute ``every``).
        stop: set from another thread to end the run (status ``"stopped"``).
        on_row: called with every recorded row (non-finite floats as ``None``).
        stage: the name a divergence carries.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r} is not allowed; allowed: "
                         f"{', '.join(OPTIMIZERS)}")
    loss = loss or net.loss
    data, model = net.build(loss=loss)
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
        run = fit(model, data, loss, opt, steps=int(steps), record_every=int(record_every),
                  probes=probes, callbacks=[collect], stop=stop, eval_test=False)
    finally:
        torch.set_num_threads(threads)
    result = {"status": run.status, "history": history, "seconds": run.seconds,
              "lr": lr, "optimizer": optimizer, "loss": loss}
    if run.diverged:
        step, value = run.diverged_at
        result["diverged"] = {"step": step, "loss": value if math.isfinite(value) else 1e308,
                              "lr": lr, "stage": stage}
    return result
