"""The ``eoslab`` command line.

``eoslab run``: train one configuration (flags or a JSON file), with a progress bar; the
history goes to the store and a summary is printed.  Exit status 0 when the run finished,
3 when it diverged (the step and loss are printed), 2 for bad input: every flag and config
field is validated before training (:class:`~eoslab.core.config.TrainConfig`), a config
file that is missing, a folder, not JSON or not a JSON object is named, and the store is
checked for writability first; the message names the field, the file or the store, with no
traceback.

``eoslab sweep``: a grid of configs, locally (batched) or on a Ray cluster; ``eoslab runs``:
the stored runs, filtered (both in :mod:`eoslab.cli.grid`).

``eoslab export <run>``: a stored run's history (CSV, JSON), chart (SVG, PNG) and code
(:mod:`eoslab.cli.export`).

``eoslab serve``: serve the book's chapters as Voila apps; ``eoslab lab``: open the book in
JupyterLab (both in :mod:`eoslab.serve`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import threading

__all__ = ["main"]


def _config_parser(sub) -> argparse.ArgumentParser:
    from eoslab.core.config import TrainConfig
    from eoslab.core.options import MAX_STEPS

    def JSON(text):  # argparse names the type in "invalid JSON value: ..."
        return json.loads(text)

    def steps(text):  # argparse: "invalid steps value: ..." for anything outside [1, MAX_STEPS]
        value = int(text)
        if not 1 <= value <= MAX_STEPS:
            raise ValueError(text)
        return value

    p = sub.add_parser("run", help="train one configuration and store its history")
    p.add_argument("--config", help="a JSON file of TrainConfig fields (flags override it)")
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("data_options", "schedule_options", "betas"):
            p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=JSON,
                           help=f"{f.name} as JSON")
            continue
        kind = {"int | None": int, "int": int, "float": float, "str": str}.get(str(f.type), str)
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=kind,
                       help=f"default: {f.default!r}")
    p.add_argument("--no-store", action="store_true", help="do not read or write the store")
    p.add_argument("--fresh", action="store_true", help="retrain even if the store has it")
    p.add_argument("--checkpoint-every", type=steps, default=None,
                   help=f"checkpoint every N steps (1 <= N <= {MAX_STEPS}); an interrupted "
                   "run resumes from it (needs the store)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _cmd_run(args) -> int:
    from tqdm import tqdm

    from eoslab.core.claims import DEFAULT_LEASE
    from eoslab.core.config import TrainConfig
    from eoslab.core.experiment import run
    from eoslab.core.store import RunStore

    values = {}
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as handle:
                values = json.load(handle)
        except OSError as err:  # missing, a directory, unreadable
            raise ValueError(f"--config {args.config}: {err.strerror or err}") from None
        except ValueError as err:  # not JSON, not UTF-8
            raise ValueError(f"--config {args.config}: not a JSON file ({err})") from None
        if not isinstance(values, dict):
            kind = {list: "an array", str: "a string", bool: "true/false", int: "a number",
                    float: "a number", type(None): "null"}[type(values)]
            raise ValueError(f"--config {args.config}: holds {kind}; use a JSON object of "
                             "TrainConfig fields, e.g. {\"lr\": 0.1, \"steps\": 100}")
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    try:
        config = TrainConfig.from_dict({**values, **overrides})
    except (TypeError, ValueError) as err:  # validation: every message names the field
        where = f" (from --config {args.config} or the flags)" if args.config else ""
        raise ValueError(f"{err}{where}") from None
    if args.checkpoint_every is not None and args.no_store:
        raise ValueError(f"--checkpoint-every {args.checkpoint_every} needs the store (the "
                         "checkpoints live there); drop it or --no-store")
    store = False if args.no_store else RunStore()
    if store:
        if store.root.exists() and not store.root.is_dir():
            raise ValueError(f"the store {store.root} is a file, not a folder; set EOSLAB_STORE "
                             "to a writable folder or use --no-store")
        try:  # before training, so that a result is never computed and then lost
            store.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=store.root):
                pass
        except OSError as err:
            raise ValueError(f"the store {store.root} is not writable ({err.strerror or err}); "
                             "set EOSLAB_STORE to a writable folder or use --no-store") from None
    bar = tqdm(total=config.steps, disable=args.quiet, unit="step", file=sys.stderr)

    def progress(row):
        bar.n = row["step"]
        text = {"loss": f"{row['loss']:.4g}"}
        if "sharpness" in row:
            text["S"] = f"{row['sharpness']:.3g}"
        bar.set_postfix(text, refresh=True)

    stop = threading.Event()
    try:
        result = run(config, callbacks=[progress], stop=stop, store=store,
                     reuse=not args.fresh, checkpoint_every=args.checkpoint_every,
                     lease=DEFAULT_LEASE)
    except KeyboardInterrupt:
        stop.set()
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        bar.close()
    print(f"config {config.key()}: {config.model} on {config.dataset}, {config.loss}, "
          f"{config.optimizer} lr={config.lr:g}")
    if result.extra.get("from_store"):
        print("(from the store: use --fresh to train again)")
    print(result.summary())
    if result.diverged:
        step, value = result.diverged_at
        print(f"eoslab: the run diverged at step {step} with loss {value:.4g}; "
              f"try a smaller --lr than {config.lr:g}", file=sys.stderr)
        return 3
    return 0


def main(argv=None) -> int:
    """Run the ``eoslab`` command line on ``argv`` (default: ``sys.argv``); return its status."""
    parser = argparse.ArgumentParser(prog="eoslab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _config_parser(sub)
    from eoslab import serve as _serve
    from eoslab.cli import export as export_cli
    from eoslab.cli import grid as grid_cli

    grid_cli.add_sweep_arguments(sub.add_parser(
        "sweep", help="train a grid of configs (batched, resumable; --ray for a cluster)"))
    grid_cli.add_runs_arguments(sub.add_parser(
        "runs", help="list the stored runs (--where 'lr<0.05' filters)"))
    export_cli.add_export_arguments(sub.add_parser(
        "export", help="write a stored run's history, chart and code (csv json svg png py)"))

    _serve.add_serve_arguments(sub.add_parser(
        "serve", help="serve the book's chapters as Voila apps (/voila/render/<notebook>)"))
    _serve.add_lab_arguments(sub.add_parser("lab", help="open the book in JupyterLab"))
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "sweep":
            return grid_cli.cmd_sweep(args)
        if args.command == "runs":
            return grid_cli.cmd_runs(args)
        if args.command == "export":
            return export_cli.cmd_export(args)
        if args.command == "serve":
            return _serve.cmd_serve(args)
        return _serve.cmd_lab(args)
    except (ValueError, ImportError, OSError) as err:  # bad input or environment, not a bug
        print(f"eoslab: error: {err}", file=sys.stderr)
        return 2
