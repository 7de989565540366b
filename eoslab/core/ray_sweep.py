"""Run a grid on a Ray cluster: one Ray task per group, retried by Ray when a worker dies.

The driver (``eoslab sweep --ray``) skips the configs already in the store, groups the rest
with :func:`eoslab.core.sweep_plan.plan` and submits one Ray task per group.  Ray places
each task on a node with a free CPU (``num_cpus``) or GPU (``num_gpus``, 1 by default when
the cluster has GPUs) and retries it (``max_retries``) when its worker process or node
dies.  Inside the task :func:`~eoslab.core.sweep_plan.settle` trains the group into the
store, under claims (:mod:`eoslab.core.claims`): a retried task skips what its killed
predecessor stored, takes over the claims it left, and trains only the rest; two drivers
on overlapping grids train each config once.

Requirements: ``pip install 'eoslab[cluster]'`` on every node; the store is one directory
on a file system every node mounts *at the same path* (the driver passes its store's path
to the tasks).  This process's ``eoslab`` package is shipped to the workers as the job's
``py_modules``, so every node runs the driver's code.  Ray is imported only here, lazily.

Usage (a local Ray instance with two CPUs; tests/core/test_ray_sweep.py runs it)::

    from eoslab.core.config import TrainConfig
    configs = [TrainConfig(lr=lr, steps=50) for lr in (0.05, 0.1)]
    outcomes = ray_sweep(configs, num_cpus=2)
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path

from eoslab.core.claims import DEFAULT_LEASE
from eoslab.core.config import TrainConfig
from eoslab.core.store import RunStore
from eoslab.core.sweep_plan import Outcome, Progress, plan, settle

__all__ = ["connect", "ray_runtime_env", "ray_sweep", "train_group"]


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError("running on Ray needs Ray: pip install 'eoslab[cluster]'") from None
    return ray


def ray_runtime_env() -> dict:
    """The job's runtime environment: this process's ``eoslab`` package, for every worker."""
    import eoslab

    return {"py_modules": [str(Path(eoslab.__file__).parent)],
            "excludes": ["__pycache__", "*.pyc"]}


def _token_mode_if_available() -> None:
    """Send this machine's Ray token when joining an explicit address.

    Ray turns token authentication on by itself only for a local cluster it finds; joining
    ``HOST:PORT`` needs ``RAY_AUTH_MODE=token``.  When the mode is unset and a token is at
    hand (``$RAY_AUTH_TOKEN``, ``$RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``) this does
    what Ray does for a local cluster (a cluster without authentication accepts such a
    client too).
    """
    if os.environ.get("RAY_AUTH_MODE"):
        return
    try:  # Ray's own switch: sets the variable and reloads Ray's config in this process
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:
        path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray/auth_token")
        if os.environ.get("RAY_AUTH_TOKEN") or path.is_file():
            os.environ["RAY_AUTH_MODE"] = "token"
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def connect(address: str | None = None, *, num_cpus: int | None = None,
            ship_code: bool = True) -> bool:
    """Connect to Ray (or start a local instance); whether this call started the connection.

    Args:
        address: ``None`` starts a local Ray instance (or joins ``$RAY_ADDRESS``); ``"auto"``
            joins the cluster this machine is part of; ``"HOST:PORT"`` joins that head.
        num_cpus: CPUs of a local instance (default: all).
        ship_code: send this process's ``eoslab`` to the workers (:func:`ray_runtime_env`).
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    kwargs = {"runtime_env": ray_runtime_env()} if ship_code else {}
    if address is None:
        ray.init(num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING",
                 **kwargs)
    else:
        _token_mode_if_available()
        ray.init(address=address, logging_level="WARNING", **kwargs)
    return True


def train_group(config_dicts: list[dict], store_root: str, lease: float,
                 batch: bool) -> list[dict]:
    """The Ray task: settle one group's configs into the store; small reports back."""
    configs = [TrainConfig.from_dict(values) for values in config_dicts]
    outcomes = settle(configs, RunStore(store_root), lease=lease, progress=False, batch=batch,
                      max_copies=len(configs))
    host = socket.gethostname()
    return [{"key": o.config.key(), "source": o.source, "error": o.error, "host": host}
            for o in outcomes]


def _collect(reports: list[dict], group, store: RunStore) -> list[Outcome]:
    """Outcomes of a finished task, read back from the driver's view of the store."""
    out = []
    for config, report in zip(group.configs, reports):
        source, error = report["source"], report["error"]
        if source == "store":  # stored after the driver looked: by an earlier try, or a peer
            source = "other"
        result = None
        if source in ("trained", "other", "store"):
            result = store.load_run(config)
            if result is None:
                source, error = "failed", (
                    f"the worker on {report['host']} stored {report['key']} but this machine "
                    f"does not see it under {store.root}: put the store on a file system "
                    "every node mounts at the same path (EOSLAB_STORE)")
        out.append(Outcome(config, source, result, error))
    return out


def ray_sweep(configs: Sequence[TrainConfig], store: RunStore | None = None, *,
              address: str | None = None, num_cpus: int | None = None,
              lease: float = DEFAULT_LEASE, cpus_per_task: float = 1,
              gpus_per_task: float | None = None, max_retries: int = 3,
              progress: bool = True, batch: bool = True,
              max_copies: int | None = None) -> list[Outcome]:
    """Bring every config into ``store`` with one Ray task per group; outcomes in order.

    Configs already stored are skipped without touching Ray, so a repeated sweep returns at
    once.  A task that fails after its retries marks its configs ``"failed"`` (the others
    go on).

    Args:
        configs: the grid's configs.
        store: the shared store (default: :class:`RunStore`, i.e. ``$EOSLAB_STORE``).
        address: see :func:`connect` (used only when Ray is not initialised yet).
        num_cpus: CPUs of a local instance :func:`connect` starts.
        lease: the claims' lease in seconds (how long a dead node's claims block others).
        cpus_per_task: CPUs Ray reserves for a task.
        gpus_per_task: GPUs Ray reserves for a task (default: 1 if the cluster has any,
            else 0).
        max_retries: Ray's retries of a task whose worker died.
        progress: tqdm bars of configs and copy-steps (advanced as groups finish).
        batch: group step sizes into batched sweeps.
        max_copies: at most this many configs per task (spreads a large group over GPUs).
    """
    store = RunStore() if store is None else store
    configs = list(configs)
    outcomes = {c.key(): Outcome(c, "store", r) for c in configs
                if (r := store.load_run(c)) is not None}
    todo = list({c.key(): c for c in configs if c.key() not in outcomes}.values())
    if not todo:
        return [outcomes[c.key()] for c in configs]
    ray = _ray()
    started = connect(address, num_cpus=num_cpus)
    bars = Progress(len(outcomes) + len(todo), len(outcomes), sum(c.steps for c in todo),
                    enabled=progress)
    pending = {}
    try:
        if gpus_per_task is None:
            gpus_per_task = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        task = ray.remote(train_group).options(
            num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=max_retries,
            retry_exceptions=False)
        root = str(store.root.resolve())
        for group in plan(todo, batch, max_copies):
            ref = task.remote([c.to_dict() for c in group.configs], root, lease, batch)
            pending[ref] = group
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            group = pending.pop(ref)
            try:
                done = _collect(ray.get(ref), group, store)
            except ray.exceptions.RayError as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                done = [Outcome(c, "failed", error=f"{type(err).__name__}: {first}")
                        for c in group.configs]
            outcomes.update({o.config.key(): o for o in done})
            bars.config_done(len(done))
            bars.add_steps(group.steps)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        bars.close()
        if started:
            ray.shutdown()
    return [outcomes[c.key()] for c in configs]
