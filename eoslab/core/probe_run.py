"""One full-batch training run with probes, as the chapters 03-05 experiments use it.

A chapter names its problem with a :class:`NetSpec` (or any object with the same
attributes): the data set, how many training examples, and the network. :func:`build_net`
turns it into data and a model; :func:`probe_run` trains that model with plain GD
(``torch.optim.SGD``) or normalised GD (:class:`~eoslab.optimizers.normalized.NormalizedGD`)
through :func:`eoslab.core.train.fit` with the given probes, and returns a JSON-ready dict:
``status``, ``history`` (the rows), ``seconds`` and, if the run blew up, ``diverged`` with
its step, loss, lr and stage.

Example:
    >>> net = NetSpec(dataset="moons", n_train=16, model="fc-tanh", width=8, depth=1)
    >>> out = probe_run(net, 0.1, steps=4, record_every=2)
    >>> out["status"], [row["step"] for row in out["history"]]
    ('finished', [0, 2, 4])
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from eoslab.core.data import Dataset, load_dataset
from eoslab.core.models import build_model
from eoslab.core.train import fit
from eoslab.optimizers.normalized import NormalizedGD

__all__ = ["OPTIMIZERS", "NetSpec", "build_net", "probe_run"]

OPTIMIZERS = ("gd", "ngd")


@dataclass(frozen=True, kw_only=True)
class NetSpec:
    """The data and the network of a chapter's run (a field of its typed preset).

    Attributes:
        dataset: a name of :data:`eoslab.core.data.DATASET_NAMES` (e.g. ``"digits"``).
        n_train: training examples, ``None`` for the data set's default.
        model: a name :func:`eoslab.core.models.build_model` knows (e.g. ``"fc-tanh"``).
        width, depth: hidden width and number of hidden layers.
        loss: ``"mse"``, ``"sqrt-mse"``, ... (see :mod:`eoslab.core.losses`).
        dtype: floating dtype of data and model.
        model_seed: seed of the initialisation.
    """

    dataset: str
    n_train: int | None
    model: str
    width: int
    depth: int
    loss: str = "mse"
    dtype: str = "float32"
    model_seed: int = 0


def build_net(net, loss: str | None = None) -> tuple[Dataset, nn.Module]:
    """The data and the freshly initialised model ``net`` names.

    ``net`` is a :class:`NetSpec` or any object with its attributes (``loss``, ``dtype``,
    ``model_seed`` and ``device`` are optional); ``loss`` overrides ``net.loss`` for the
    targets' encoding.
    """
    loss = loss or getattr(net, "loss", "mse")
    dtype = getattr(net, "dtype", "float32")
    data = load_dataset(net.dataset, n_train=net.n_train, loss=loss, dtype=dtype,
                        device=getattr(net, "device", None))
    model = build_model(net.model, data.input_shape, data.n_outputs, width=net.width,
                        depth=net.depth, seed=getattr(net, "model_seed", 0),
                        device=data.x_train.device, dtype=dtype)
    return data, model


def _clean(row: dict) -> dict:
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in row.items()}


def probe_run(net, lr: float, *, steps: int, record_every: int, optimizer: str = "gd",
              loss: str | None = None, probes: Sequence[Callable] = (),
              stop: threading.Event | None = None,
              on_row: Callable[[dict], None] | None = None, stage: str = "GD") -> dict:
    """Train ``net``'s model with ``optimizer`` at step size ``lr``; see the module docs.

    Args:
        net: a :class:`NetSpec` or any object with its attributes.
        lr: the step size :math:`\\eta`.
        steps: length of the run.
        record_every: the history's cadence in steps.
        optimizer: ``"gd"`` or ``"ngd"`` (normalised GD).
        loss: the training loss, default ``net.loss`` (or ``"mse"``).
        probes: :func:`eoslab.core.train.fit` probes (with attribute ``every``).
        stop: set from another thread to end the run (status ``"stopped"``).
        on_row: called with every recorded row (non-finite floats as ``None``).
        stage: the name a divergence carries.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r} is not allowed; allowed: "
                         f"{', '.join(OPTIMIZERS)}")
    loss = loss or getattr(net, "loss", "mse")
    data, model = build_net(net, loss)
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
