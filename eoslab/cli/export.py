"""``eoslab export <run>``: a stored run's history, chart and code as files.

``<run>`` is a key as ``eoslab runs`` prints it (a unique prefix will do) or a JSON file of
:class:`~eoslab.core.config.TrainConfig` fields whose run is in the store.  Into ``--out``
(default: the current folder) go ``<key>.csv`` (the history, one row per recorded step),
``<key>.json`` (key, config, status and history), ``<key>.svg`` / ``<key>.png`` (loss, and
sharpness against the step size's threshold :math:`2/\\eta`), and ``<key>.py`` (the Python
that builds the config and reruns it, :func:`eoslab.core.export_formats.config_code`);
``--format`` picks some of ``svg png csv json code``.  Exit status 0, or 2 for a run not in
the store, an unknown format or an output folder that cannot be written, with a one-line
message naming the value.

Example::

    eoslab runs
    eoslab export 3f2a9c0d1e2b4a57 --out figures --format svg csv
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["FORMATS", "add_export_arguments", "cmd_export", "history_figure", "load_stored"]

FORMATS = ("svg", "png", "csv", "json", "code")


def add_export_arguments(p) -> None:
    """The arguments of ``eoslab export``."""
    p.add_argument("run", help="a stored run's key (as `eoslab runs` prints it) or a JSON "
                               "file of TrainConfig fields")
    p.add_argument("--out", default=".", help="the folder to write to (made if missing)")
    p.add_argument("--format", nargs="+", default=list(FORMATS), metavar="FORMAT",
                   help=f"some of: {' '.join(FORMATS)} (default: all)")
    p.add_argument("--store", help="the store directory (default: $EOSLAB_STORE or "
                                   "~/.cache/eoslab)")


def _from_config_file(store, path: str):
    from eoslab.core.config import TrainConfig

    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle)
    except OSError as err:
        raise ValueError(f"run {path!r}: {err.strerror or err}") from None
    except ValueError as err:
        raise ValueError(f"run {path!r}: not a JSON file ({err})") from None
    config = TrainConfig.from_dict(values)
    run = store.load_run(config)
    if run is None:
        raise ValueError(f"run {path!r} (key {config.key()}) is not in the store {store.root}; "
                         f"run `eoslab run --config {path}` first")
    return config.key(), config, run


def load_stored(store, run: str):
    """``(key, config, run)`` of ``run``: a key, a unique key prefix or a config JSON file."""
    from eoslab.core.config import TrainConfig
    from eoslab.core.train import Run

    if run.endswith(".json") or os.path.sep in run or Path(run).is_file():
        return _from_config_file(store, run)
    folder = store.root / "runs"
    keys = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                  ) if folder.is_dir() else []
    matches = [k for k in keys if k == run] or [k for k in keys if run and k.startswith(run)]
    if len(matches) > 1:
        raise ValueError(f"run {run!r} matches {len(matches)} stored runs "
                         f"({', '.join(matches[:4])}...); give more of the key")
    blob = store.load_json("runs", matches[0]) if matches else None
    if blob is None:
        raise ValueError(f"run {run!r} is not in the store {store.root}; `eoslab runs` "
                         "lists the stored keys")
    try:
        return matches[0], TrainConfig.from_dict(blob["config"]), Run.from_json(blob["run"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"run {run!r}: the stored file is not a usable run ({err})") from None


def history_figure(history: list, title: str = ""):
    """Loss (log scale) and, when recorded, sharpness against :math:`2/\\eta_t`, side by side."""
    import altair as alt

    from eoslab.ui.plots import HEIGHT, WIDTH, clean, with_datasets

    loss = [{"step": r["step"], "loss": clean(r.get("loss"))} for r in history
            if clean(r.get("loss")) is not None and r["loss"] > 0]
    curves = []
    for r in history:
        if clean(r.get("sharpness")) is not None:
            curves.append({"step": r["step"], "value": r["sharpness"], "curve": "sharpness"})
        if clean(r.get("lr")):
            curves.append({"step": r["step"], "value": 2 / r["lr"], "curve": "2/eta"})
    left = alt.Chart(alt.Data(name="loss")).mark_line().encode(
        x=alt.X("step:Q"), y=alt.Y("loss:Q", scale=alt.Scale(type="log"))).properties(
        width=WIDTH, height=HEIGHT, title="training loss")
    panels, data = [left], {"loss": loss}
    if any(c["curve"] == "sharpness" for c in curves):
        panels.append(alt.Chart(alt.Data(name="sharpness")).mark_line().encode(
            x=alt.X("step:Q"), y=alt.Y("value:Q", title="sharpness"),
            color=alt.Color("curve:N", title=None),
            strokeDash=alt.StrokeDash("curve:N", legend=None)).properties(
            width=WIDTH, height=HEIGHT, title="sharpness vs 2/eta"))
        data["sharpness"] = curves
    chart = alt.hconcat(*panels).properties(title=title) if title else alt.hconcat(*panels)
    return with_datasets(chart, data)


def _out_folder(out: str) -> Path:
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".eoslab-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"--out {out!r} cannot be written ({err.strerror or err})") from None
    return folder


def cmd_export(args) -> int:
    """Run ``eoslab export``; its exit status."""
    from eoslab.core.export_formats import config_code, datasets_json, rows_csv
    from eoslab.core.store import RunStore

    formats = list(dict.fromkeys(args.format))
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"--format {bad[0]!r} is not allowed; allowed: {', '.join(FORMATS)}")
    store = RunStore(args.store) if args.store else RunStore()
    key, config, run = load_stored(store, args.run)
    folder = _out_folder(args.out)
    files: dict[str, str | bytes] = {}
    if "csv" in formats:
        files["csv"] = rows_csv(run.history)
    if "json" in formats:
        files["json"] = datasets_json({"key": key, "config": config.to_dict(),
                                       "status": run.status, "diverged_at": run.diverged_at,
                                       "steps_done": run.steps_done, "history": run.history})
    if "code" in formats:
        files["py"] = config_code(config)
    if "svg" in formats or "png" in formats:
        from eoslab.ui.export import chart_png, chart_svg

        spec = history_figure(run.history, f"{config.model} on {config.dataset}, "
                                           f"{config.optimizer} lr={config.lr:g}").to_dict()
        if "svg" in formats:
            files["svg"] = chart_svg(spec)
        if "png" in formats:
            files["png"] = chart_png(spec)
    for suffix, content in files.items():
        path = folder / f"{key}.{suffix}"
        try:
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        except OSError as err:
            raise ValueError(f"--out {args.out!r}: {path.name} cannot be written "
                             f"({err.strerror or err})") from None
        print(path)
    return 0
