"""Run a grid of configs into a (shared) store: batched where possible, claimed, resumable.

:func:`plan` groups the configs: configs that differ only in ``lr`` and ``model_seed`` and
that the batched engine reproduces (:func:`eoslab.core.sweep.check_sweepable`) form one
group, trained as one :func:`eoslab.core.sweep.sweep` call; any other config is a group of
its own, trained by :func:`eoslab.core.experiment.run`.

:func:`settle` brings every config of a list into the store.  Configs already stored are
skipped (so a second call after an interruption trains only what is missing); the others
are claimed (:mod:`eoslab.core.claims`) before they are trained, so two processes or
machines working on overlapping grids train each config once; a config another live
worker holds is waited for, and taken over if that worker dies.  Progress: two tqdm bars,
configs and copy-steps, with an ETA.

Example:
    >>> import tempfile
    >>> from eoslab.core.store import RunStore
    >>> base = TrainConfig(dataset="sine", width=8, steps=6, record_every=3, device="cpu")
    >>> configs = [base.replace(lr=lr) for lr in (0.1, 0.2)] + [base.replace(optimizer="adam")]
    >>> [len(g.configs) for g in plan(configs)], [g.batched for g in plan(configs)]
    ([2, 1], [True, False])
    >>> store = RunStore(tempfile.mkdtemp())
    >>> [o.source for o in settle(configs, store, progress=False)]
    ['trained', 'trained', 'trained']
    >>> [o.source for o in settle(configs, store, progress=False)]
    ['store', 'store', 'store']
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from eoslab.core.claims import DEFAULT_LEASE, Claims
from eoslab.core.config import TrainConfig
from eoslab.core.store import RunStore
from eoslab.core.train import Run

__all__ = ["Group", "Outcome", "Progress", "group_signature", "plan", "settle"]


@dataclass
class Group:
    """Configs trained together: one batched sweep (``batched``) or one run each."""

    configs: list[TrainConfig]
    batched: bool

    @property
    def steps(self) -> int:
        """Copy-steps of the group (the steps bar's share)."""
        return sum(c.steps for c in self.configs)

    def describe(self) -> str:
        c = self.configs[0]
        how = f"batched sweep of {len(self.configs)}" if self.batched else "one run"
        return f"{how}: {c.model} on {c.dataset}, {c.optimizer}, {c.steps} steps"


@dataclass
class Outcome:
    """What became of one config: ``source`` says who trained it.

    ``source`` is ``"store"`` (stored before), ``"trained"`` (by this worker),
    ``"other"`` (by another worker while this one waited), ``"failed"`` (``error`` says why)
    or ``"stopped"``.
    """

    config: TrainConfig
    source: str
    run: Run | None = None
    error: str | None = None

    @property
    def status(self) -> str:
        """The run's status (finished / diverged / stopped), or the failure."""
        return self.run.status if self.run is not None else self.source

    def to_json(self) -> dict:
        return {"key": self.config.key(), "config": self.config.to_dict(),
                "source": self.source, "status": self.status, "error": self.error}


def group_signature(config: TrainConfig) -> str:
    """Configs with the same signature differ only in step size and model seed."""
    values = config.to_dict()
    values.pop("lr"), values.pop("model_seed")
    return json.dumps(values, sort_keys=True, default=str)


def plan(configs: Sequence[TrainConfig], batch: bool = True,
         max_copies: int | None = None) -> list[Group]:
    """Groups of ``configs`` in first-seen order (see the module docstring).

    ``max_copies`` splits a batched group into parts of at most that many configs (so a
    cluster spreads one architecture's step sizes and seeds over several GPUs).
    """
    if max_copies is not None and (isinstance(max_copies, bool) or not isinstance(
            max_copies, int) or max_copies < 1):
        raise ValueError(f"max_copies={max_copies!r} is not allowed; use an integer >= 1")
    from eoslab.core.sweep import check_sweepable

    groups: dict[str, Group] = {}
    singles = []
    for config in configs:
        try:
            check_sweepable(config)
            sweepable = batch
        except ValueError:
            sweepable = False
        if not sweepable:
            groups[f"single-{len(singles)}-{config.key()}"] = Group([config], False)
            singles.append(config)
            continue
        groups.setdefault(group_signature(config), Group([], True)).configs.append(config)
    out = []
    for group in groups.values():
        size = max_copies or len(group.configs)
        for i in range(0, len(group.configs), size):
            part = group.configs[i:i + size]
            out.append(Group(part, group.batched and len(part) > 1))
    return out


class Progress:
    """Two tqdm bars on stderr: configs done, and copy-steps done (with the ETA)."""

    def __init__(self, total_configs: int, done_configs: int = 0, total_steps: int = 0,
                 enabled: bool = True):
        from tqdm import tqdm

        self.configs = tqdm(total=total_configs, initial=done_configs, unit="config",
                            desc="configs", position=0, disable=not enabled, file=sys.stderr,
                            dynamic_ncols=True)
        self.steps = tqdm(total=total_steps, unit="step", desc="steps  ", position=1, leave=False,
                          disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                          unit_scale=True)

    def config_done(self, n: int = 1, note: str | None = None) -> None:
        self.configs.update(n)
        if note:
            self.configs.set_postfix_str(note, refresh=True)

    def add_steps(self, n: int) -> None:
        if n > 0:
            self.steps.update(n)

    def close(self) -> None:
        self.steps.close()
        self.configs.close()


class _StepCounter:
    """Turns history rows into copy-step increments of the steps bar."""

    def __init__(self, progress: Progress | None, configs: Sequence[TrainConfig]):
        self.progress, self.configs = progress, list(configs)
        self.last = [0] * len(self.configs)

    def copy_row(self, index: int, row: dict) -> None:
        if self.progress is not None:
            step = int(row.get("step", 0))
            self.progress.add_steps(step - self.last[index])
            self.last[index] = max(self.last[index], step)

    def finish(self) -> None:
        """Count the steps a diverged copy skipped, so the bar ends at its total."""
        for i, config in enumerate(self.configs):
            self.copy_row(i, {"step": config.steps})


def _train(configs: list[TrainConfig], batched: bool, store: RunStore,
           progress: Progress | None, stop: threading.Event | None) -> list[Run]:
    """Train claimed ``configs`` (one group, in order) and store them; their runs in order."""
    from eoslab.core.experiment import run
    from eoslab.core.sweep import sweep

    counter = _StepCounter(progress, configs)
    runs: dict[str, Run] = {}
    if batched and len(configs) > 1:
        index = {c.key(): i for i, c in enumerate(configs)}
        seeds_of: dict[tuple, list[int]] = defaultdict(list)  # a product per sweep call
        by_seed: dict[int, list[float]] = defaultdict(list)
        for c in configs:
            by_seed[c.model_seed].append(c.lr)
        for seed, lrs in by_seed.items():
            seeds_of[tuple(lrs)].append(seed)
        for lrs, seeds in seeds_of.items():
            base = configs[0].replace(lr=lrs[0], model_seed=seeds[0])
            keys = [base.replace(lr=lr, model_seed=s).key() for s in seeds for lr in lrs]

            def on_row(i, row, keys=keys):
                counter.copy_row(index[keys[i]], row)

            result = sweep(base, lrs=list(lrs), seeds=seeds, store=store, stop=stop,
                           callbacks=[on_row])
            runs.update({cfg.key(): r for cfg, r in result})
    else:
        for i, config in enumerate(configs):
            runs[config.key()] = run(config, store=store, stop=stop,
                                     callbacks=[lambda row, i=i: counter.copy_row(i, row)])
    counter.finish()
    return [runs[c.key()] for c in configs]


def _claim_and_train(group: Group, store: RunStore, claims: Claims, progress, stop,
                     outcomes: dict) -> bool:
    """Train the configs of ``group`` this worker can claim; whether it trained any."""
    claimed, mine = [], []
    try:
        for config in group.configs:
            claim = claims.acquire(config.key())
            if claim is None:
                continue
            claimed.append(claim)
            stored = store.load_run(config)  # finished between our look and our claim
            if stored is not None:
                outcomes[config.key()] = Outcome(config, "other", stored)
                if progress is not None:
                    progress.config_done()
                continue
            mine.append(config)
        if not mine:
            return bool(claimed)
        try:
            runs = _train(mine, group.batched, store, progress, stop)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as err:  # noqa: BLE001 - one bad config must not end the grid
            for config in mine:
                outcomes[config.key()] = Outcome(config, "failed",
                                                 error=f"{type(err).__name__}: {err}")
            if progress is not None:
                progress.config_done(len(mine), note=f"failed: {err}")
            return True
        for config, result in zip(mine, runs):
            source = "stopped" if result.status == "stopped" else "trained"
            outcomes[config.key()] = Outcome(config, source, result)
        if progress is not None:
            progress.config_done(len(mine))
        return True
    finally:
        for claim in claimed:
            claims.release(claim)


def settle(configs: Sequence[TrainConfig], store: RunStore | None = None, *,
           lease: float = DEFAULT_LEASE, poll: float = 0.5, progress: bool | Progress = True,
           stop: threading.Event | None = None, batch: bool = True,
           max_copies: int | None = None) -> list[Outcome]:
    """Bring every config into ``store``; one :class:`Outcome` per config, in order.

    Args:
        configs: the configs (e.g. :meth:`eoslab.core.grid_spec.Grid.configs`).
        store: the store, shared with any other worker (default: :class:`RunStore`).
        lease: seconds of the claims' lease (:class:`eoslab.core.claims.Claims`).
        poll: seconds between looks at configs another worker is training (growing to
            ``10 * poll`` while nothing changes).
        progress: show the bars (or a :class:`Progress` to update).
        stop: an event that ends the work; unfinished configs come back ``"stopped"``.
        batch: group step sizes into batched sweeps (``False``: one run per config).
        max_copies: at most this many configs per batched sweep (see :func:`plan`).
    """
    store = RunStore() if store is None else store
    configs = list(configs)
    unique = list({c.key(): c for c in reversed(configs)}.values())[::-1]  # first of each key
    outcomes: dict[str, Outcome] = {}
    for config in unique:
        stored = store.load_run(config)
        if stored is not None:
            outcomes[config.key()] = Outcome(config, "store", stored)
    todo = [c for c in unique if c.key() not in outcomes]
    bars = progress if isinstance(progress, Progress) else Progress(
        len(unique), len(outcomes), sum(c.steps for c in todo), enabled=bool(progress))
    try:
        with Claims(store, "runs", lease) as claims:
            wait = poll
            while todo and not (stop is not None and stop.is_set()):
                worked = False
                for group in plan(todo, batch, max_copies):
                    if stop is not None and stop.is_set():
                        break
                    worked |= _claim_and_train(group, store, claims, bars, stop, outcomes)
                left = _waiting(todo, store, outcomes, bars)
                wait = poll if worked or len(left) < len(todo) else min(10 * poll, 1.5 * wait)
                todo = left
                if todo and not worked:
                    holders = {_owner(claims.holder(c.key())) for c in todo[:20]} - {None}
                    bars.configs.set_postfix_str(
                        f"waiting for {len(todo)} held by {', '.join(sorted(holders))}")
                    time.sleep(wait)
    finally:
        if not isinstance(progress, Progress):
            bars.close()
    for config in configs:
        outcomes.setdefault(config.key(), Outcome(config, "stopped"))
    return [outcomes[c.key()] for c in configs]


def _waiting(todo, store: RunStore, outcomes: dict, bars: Progress) -> list[TrainConfig]:
    """The configs of ``todo`` still unresolved; the ones another worker stored are recorded."""
    left = []
    for config in todo:
        if config.key() in outcomes:
            continue
        stored = store.load_run(config)
        if stored is None:
            left.append(config)
            continue
        outcomes[config.key()] = Outcome(config, "other", stored)
        bars.config_done()
    return left


def _owner(info: dict | None) -> str | None:
    return None if info is None else f"{info.get('host', '?')}:{info.get('pid', '?')}"
