"""From a :class:`~eoslab.core.config.TrainConfig` to a finished, stored run.

``run(config)`` loads the data, builds the model and optimiser, attaches the probes the
config asks for, trains, and saves the resulting :class:`~eoslab.core.train.Run` in the
store.  When the store already holds
the run it is returned at once (``reuse=True``); an unfinished run with a checkpoint is
resumed (``resume=True``); a corrupt or mismatched checkpoint is moved aside and the run
starts afresh.  The store is checked for writability before training
(:class:`~eoslab.core.store.StoreError` naming the path); a result the store cannot take
(a full disk) is kept in a fallback folder named in a warning and in
``run.extra["saved_to"]``.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from eoslab.core.config import TrainConfig
from eoslab.core.data import Dataset, load_dataset
from eoslab.core.models import build_model
from eoslab.core.optim import make_optimizer, make_scheduler
from eoslab.core.store import RunStore, StoreWarning
from eoslab.core.train import Run, fit

__all__ = ["Setup", "build_problem", "build_setup", "run"]


@dataclass
class Setup:
    """The live objects a config describes."""

    data: Dataset
    model: nn.Module
    optimizer: object
    scheduler: object


def build_setup(config: TrainConfig) -> Setup:
    """Data, model, optimiser and scheduler for ``config`` (validated by their builders)."""
    data = load_dataset(config.dataset, n_train=config.n_train, classes=config.classes,
                        seed=config.data_seed, loss=config.loss, device=config.device,
                        dtype=config.dtype, **config.data_options)
    model = build_model(config.model, data.input_shape, data.n_outputs, width=config.width,
                        depth=config.depth, seed=config.model_seed, device=data.x_train.device,
                        dtype=config.dtype)
    optimizer = make_optimizer(config.optimizer, model.parameters(), config.lr,
                               momentum=config.momentum, weight_decay=config.weight_decay,
                               betas=config.betas, eps=config.eps,
                               options=config.optimizer_options, seed=config.seed)
    scheduler = make_scheduler(config.schedule, optimizer, config.steps, config.schedule_options)
    return Setup(data, model, optimizer, scheduler)


def build_problem(values, dtype: str = "float32") -> tuple[Dataset, nn.Module]:
    """The data and model a chapter preset's values name, without an optimiser.

    ``values`` holds ``dataset, n_train, loss, model, width, depth`` and optionally
    ``model_seed`` (default 0), ``dtype`` (default ``dtype``) and ``device``.

    >>> data, model = build_problem({"dataset": "moons", "n_train": 8, "loss": "mse",
    ...                              "model": "fc-tanh", "width": 4, "depth": 1}, "float64")
    >>> data.x_train.shape[0], next(model.parameters()).dtype
    (8, torch.float64)
    """
    dtype = values.get("dtype", dtype)
    data = load_dataset(values["dataset"], n_train=values["n_train"], loss=values["loss"],
                        dtype=dtype, device=values.get("device"))
    model = build_model(values["model"], data.input_shape, data.n_outputs,
                        width=values["width"], depth=values["depth"],
                        seed=values.get("model_seed", 0), device=data.x_train.device,
                        dtype=dtype)
    return data, model


def config_probes(config: TrainConfig) -> list:
    """The probes a config switches on (``sharpness_every``)."""
    probes = []
    if config.sharpness_every:
        from eoslab.curvature.sharpness import SharpnessProbe

        probes.append(SharpnessProbe(every=config.sharpness_every))
    return probes


def run(config: TrainConfig, *, callbacks: Sequence[Callable] = (),
        stop: threading.Event | None = None, store: RunStore | None | bool = None,
        reuse: bool = True, resume: bool = True, checkpoint_every: int | None = None,
        probes: Sequence[Callable] = (), lease: float | None = None) -> Run:
    """Train the experiment ``config`` describes, using and filling the store.

    Args:
        config: the experiment.
        callbacks: receive each history row as it is recorded (for live charts).
        stop: an event another thread may set to stop the run.
        store: a :class:`RunStore`, ``None`` for the default one, ``False`` for none.
        reuse: return a stored finished/diverged run without training.
        resume: continue from a stored checkpoint when one exists.
        checkpoint_every: save a checkpoint every this many steps (default: none).
        probes: extra probes beyond those the config switches on.
        lease: train under a claim on the config's key (:mod:`eoslab.core.claims`, a lease
            of this many seconds), so that processes sharing the store train it once; while
            another process holds the claim this one waits, then reads its result.
    """
    store = RunStore() if store is None else (store or None)
    if store is not None and lease:
        from eoslab.core.claims import claimed

        def again():
            return run(config, callbacks=callbacks, stop=stop, store=store, reuse=reuse,
                       resume=resume, checkpoint_every=checkpoint_every, probes=probes)

        return claimed(store, config.key(), again, lease=lease,
                       ready=lambda: reuse and store.load_run(config) is not None)
    if store is not None and reuse:
        stored = store.load_run(config)
        if stored is not None:
            for row in stored.history:
                for callback in callbacks:
                    callback(row)
            stored.extra["from_store"] = True
            return stored
    if store is not None:
        store.check_writable("runs")  # a file or read-only store fails now, not after training
    setup = build_setup(config)
    checkpoint = None
    resume_state = None
    if store is not None and checkpoint_every:
        checkpoint = store.checkpointer("runs", config.key(), checkpoint_every)
        if resume:  # a checkpoint that does not fit this run is moved aside: start afresh
            resume_state = checkpoint.load(max_step=config.steps, model=setup.model,
                                           optimizer=setup.optimizer)
    result = fit(setup.model, setup.data, config.loss, setup.optimizer, steps=config.steps,
                 scheduler=setup.scheduler, batch_size=config.batch_size,
                 chunk_size=config.chunk_size, record_every=config.record_every,
                 probes=[*config_probes(config), *probes], callbacks=callbacks, stop=stop,
                 divergence_factor=config.divergence_factor, seed=config.seed,
                 checkpoint=checkpoint, resume_state=resume_state)
    if store is not None and result.status != "stopped":
        _save(store, config, result, checkpoint)
    return result


def _save(store: RunStore, config: TrainConfig, result: Run, checkpoint) -> None:
    """Store ``result``; if the store fails, keep it elsewhere (or at least return it)."""
    try:
        path = store.save_run(config, result)
    except OSError as err:  # neither the store nor the fallback folder could be written
        warnings.warn(f"the run of config {config.key()} was not saved: {err}", StoreWarning,
                      stacklevel=3)
        return
    if path != store.path("runs", config.key()) / "result.json":
        result.extra["saved_to"] = str(path)  # a fallback copy; keep the checkpoint too
    elif checkpoint is not None:
        checkpoint.clear()
