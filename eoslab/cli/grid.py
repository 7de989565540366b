"""``eoslab sweep`` (a grid of configs, locally or on Ray) and ``eoslab runs`` (the store).

``eoslab sweep``: the base config from flags (as ``eoslab run``) and ``--config``, axes from
``--grid FIELD=VALUES`` (repeatable) and ``--grid-file`` (JSON/YAML); see
:mod:`eoslab.core.grid_spec` for the syntax.  Every value is validated before any work.
Locally, step-size groups go through the batched engine and the rest run in sequence,
with progress bars of configs and steps; ``--ray [ADDRESS]`` sends one Ray task per group
to a cluster (:mod:`eoslab.core.ray_sweep`).  Configs already stored are skipped, so the
same command after an interruption finishes only what is missing; claims
(:mod:`eoslab.core.claims`) keep concurrent sweeps from training a config twice.
``--summary`` prints the grid's table.  Exit status: 0 when every config is stored, 1 when
some failed, 2 for a bad grid, 130 when interrupted.

``eoslab runs``: the stored runs (and the ones in progress) as a table, filtered by
``--where`` (:mod:`eoslab.core.run_table`).

Examples::

    eoslab sweep --steps 500 --grid lr=0.01,0.02,0.04 --grid model_seed=0:4 --summary
    eoslab sweep --grid-file grid.yaml --ray auto
    eoslab runs --where 'lr<0.05' --where model=fc-tanh
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading

__all__ = ["add_runs_arguments", "add_sweep_arguments", "cmd_runs", "cmd_sweep"]

_JSON_FIELDS = ("data_options", "schedule_options", "betas")
_SUMMARY_HEADERS = {"final_loss": "final loss", "band": "sharpness/(2/lr)"}


def _add_config_flags(p) -> None:
    from eoslab.core.config import TrainConfig

    for f in dataclasses.fields(TrainConfig):
        flag = f"--{f.name.replace('_', '-')}"
        if f.name in _JSON_FIELDS:
            p.add_argument(flag, dest=f.name, type=json.loads, help=f"{f.name} as JSON")
            continue
        kind = {"int | None": int, "int": int, "float": float, "str": str}.get(str(f.type), str)
        p.add_argument(flag, dest=f.name, type=kind, help=f"default: {f.default!r}")


def add_sweep_arguments(p) -> None:
    """The flags of ``eoslab sweep``."""
    _add_config_flags(p)
    p.add_argument("--config", help="a JSON file of base TrainConfig fields (flags override it)")
    p.add_argument("--grid", action="append", default=[], metavar="FIELD=VALUES",
                   help="an axis: lr=0.01,0.02  model_seed=0:4 (end excluded)  "
                        "model=fc-tanh,fc-relu  betas=[[0.9,0.99],[0.8,0.9]]; repeatable")
    p.add_argument("--grid-file", help="a JSON or YAML grid: {base: {...}, grid: {FIELD: [...]}}")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray: alone, a local instance (or $RAY_ADDRESS); 'auto' or "
                        "HOST:PORT joins a running cluster (needs eoslab[cluster])")
    p.add_argument("--num-cpus", type=int, help="CPUs of a local Ray instance (default: all)")
    p.add_argument("--cpus-per-task", type=float, default=1, help="Ray: CPUs per group task")
    p.add_argument("--gpus-per-task", type=float, default=None,
                   help="Ray: GPUs per group task (default: 1 if the cluster has GPUs)")
    p.add_argument("--max-retries", type=int, default=3,
                   help="Ray: retries of a task whose worker died (default 3)")
    p.add_argument("--lease", type=float, default=None,
                   help="seconds after which a dead worker's claim is taken over (default 120)")
    p.add_argument("--store", help="the store directory (default: $EOSLAB_STORE or "
                                   "~/.cache/eoslab); on a cluster, a shared file system")
    p.add_argument("--no-batch", action="store_true",
                   help="one run per config instead of batched step-size groups")
    p.add_argument("--group-size", type=int, default=None, metavar="N",
                   help="at most N configs per batched group (on Ray: per task, so one "
                        "architecture's step sizes and seeds spread over several GPUs)")
    p.add_argument("--summary", action="store_true",
                   help="print the grid's table: final loss, sharpness band, status")
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_runs_arguments(p) -> None:
    """The flags of ``eoslab runs``."""
    p.add_argument("--where", action="append", default=[], metavar="FIELD OP VALUE",
                   help="a filter, e.g. 'lr<0.05', model=fc-tanh,fc-relu, status=finished; "
                        "repeatable (all must hold)")
    p.add_argument("--columns", help="comma-separated config fields to show (default: the "
                                     "ones that differ between the runs listed)")
    p.add_argument("--json", action="store_true", help="one JSON object per run instead")
    p.add_argument("--store", help="the store directory (default: $EOSLAB_STORE or "
                                   "~/.cache/eoslab)")


def _store(args):
    from eoslab.core.store import RunStore

    return RunStore(args.store) if args.store else RunStore()


def _grid(args):
    from eoslab.core.config import TrainConfig
    from eoslab.core.grid_spec import build_grid, load_grid_file, parse_axis

    base, axes = {}, {}
    if args.grid_file:
        base, axes = load_grid_file(args.grid_file)
    if args.config:
        with open(args.config) as handle:
            base = {**json.load(handle), **base}
    base.update({f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name, None) is not None})
    for text in args.grid:
        name, values = parse_axis(text)
        if name in axes:
            raise ValueError(f"grid field {name!r} is given twice (--grid and the grid file)")
        axes[name] = values
    if not axes:
        raise ValueError("no grid: give at least one --grid FIELD=VALUES (e.g. "
                         "--grid lr=0.01,0.02) or --grid-file")
    for name in axes:
        base.pop(name, None)  # an axis overrides a flag's value of its field
    return build_grid(base, axes, skip_missing_data=args.ray is not None)


def _print_plan(grid, configs, store, max_copies) -> None:
    from eoslab.core.sweep_plan import plan

    todo = [c for c in configs if store.load_run(c) is None]
    for group in plan(todo, batch=True, max_copies=max_copies):
        points = "; ".join(", ".join(f"{k}={v!r}" for k, v in grid.point(c).items())
                           for c in group.configs)
        print(f"  {group.describe()}  [{points}]")


def cmd_sweep(args) -> int:
    """Run ``eoslab sweep``; its exit status."""
    from eoslab.core.claims import DEFAULT_LEASE
    from eoslab.core.run_table import format_table, run_values

    grid = _grid(args)
    store = _store(args)
    configs = grid.configs()
    stored = sum(store.load_run(c) is not None for c in configs)
    axes = ", ".join(f"{k} x{len(v)}" for k, v in grid.axes.items())
    where = "on Ray" if args.ray is not None else "locally"
    rest = "nothing to train" if stored == len(configs) else f"the rest {where}"
    print(f"grid: {len(configs)} configs ({axes}); {stored} already in the store "
          f"{store.root}; {rest}", file=sys.stderr)
    if args.dry_run:
        _print_plan(grid, configs, store, args.group_size)
        return 0
    lease = args.lease or DEFAULT_LEASE
    stop = threading.Event()
    try:
        if args.ray is not None:
            from eoslab.core.ray_sweep import ray_sweep

            outcomes = ray_sweep(configs, store, address=args.ray or None,
                                 num_cpus=args.num_cpus, lease=lease,
                                 cpus_per_task=args.cpus_per_task,
                                 gpus_per_task=args.gpus_per_task, max_retries=args.max_retries,
                                 progress=not args.quiet, batch=not args.no_batch,
                                 max_copies=args.group_size)
        else:
            from eoslab.core.sweep_plan import settle

            outcomes = settle(configs, store, lease=lease, progress=not args.quiet, stop=stop,
                              batch=not args.no_batch, max_copies=args.group_size)
    except KeyboardInterrupt:
        stop.set()
        done = sum(store.load_run(c) is not None for c in configs)
        print(f"\ninterrupted: {done} of {len(configs)} configs are stored; the same command "
              "finishes the rest", file=sys.stderr)
        return 130
    counts = {}
    for o in outcomes:
        counts[o.source] = counts.get(o.source, 0) + 1
    names = {"trained": "trained here", "store": "from the store",
             "other": "trained by another worker", "failed": "failed", "stopped": "stopped"}
    print(f"{len(outcomes)} configs: " + ", ".join(f"{counts[s]} {names[s]}" for s in names
                                                   if s in counts))
    if args.summary:
        rows = [{**grid.point(o.config), **run_values(o.config, o.run, _status(o)),
                 "source": o.source} for o in outcomes]
        columns = [*grid.axes, "status", "final_loss", "band", "source"]
        print(format_table(rows, columns, _SUMMARY_HEADERS))
    for o in outcomes:
        if o.error:
            point = ", ".join(f"{k}={v!r}" for k, v in grid.point(o.config).items())
            print(f"eoslab: {point}: {o.error}", file=sys.stderr)
    if counts.get("failed"):
        return 1
    return 130 if counts.get("stopped") else 0


def _status(outcome) -> str | None:
    return None if outcome.run is not None else outcome.source


def cmd_runs(args) -> int:
    """Run ``eoslab runs``; its exit status."""
    from eoslab.core import run_table

    filters = [run_table.parse_where(text) for text in args.where]
    store = _store(args)
    records = run_table.stored_runs(store)
    shown = [r for r in records if all(f.matches(r) for f in filters)]
    if args.json:
        for record in shown:
            print(json.dumps(record, default=str))
        return 0
    if args.columns:
        fields = [c.strip().replace("-", "_") for c in args.columns.split(",") if c.strip()]
        allowed = run_table.CONFIG_FIELDS
        unknown = [c for c in fields if c not in allowed]
        if unknown:
            raise ValueError(f"--columns {unknown} unknown; fields: {', '.join(allowed)}")
    else:
        wanted = set(run_table.varying(shown)) - {"device"} | {"dataset", "model", "lr", "steps"}
        fields = [f for f in run_table.CONFIG_FIELDS if f in wanted]
    shown.sort(key=lambda r: _sort_key(r, fields))
    if shown:
        print(run_table.format_table(shown, ["key", *fields, "status", "final_loss", "band"],
                           _SUMMARY_HEADERS))
    print(f"{len(shown)} of {len(records)} runs in {store.root}"
          + (f" match {' and '.join(args.where)}" if args.where else ""),
          file=sys.stderr if shown else sys.stdout)
    return 0


def _sort_key(record: dict, fields) -> list:
    key = []
    for f in fields:
        v = record.get(f)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            key.append((0, float(v), ""))
        else:
            key.append((1 if v is not None else 2, 0.0, json.dumps(v, default=str)))
    return key
