"""Tables of runs: the stored runs with filters, and a grid's summary.

A filter is ``FIELD OP VALUE`` with ``OP`` one of ``= == != < <= > >=``; ``=`` and ``!=``
take a comma-separated list (one of / none of).  ``FIELD`` is a :class:`TrainConfig` field
or ``key``, ``status`` (finished, diverged, running, abandoned, unreadable; shown with
the divergence step or the claim's owner, ``status=diverged`` matches them all),
``final_loss`` (the last recorded loss), ``steps_done`` or ``sharpness`` (the last
recorded one).

The *sharpness band* of a run is the range of :math:`\\lambda_{\\max}\\,\\eta_t / 2` over
the last half of its recorded sharpness values: a band around 1 is the edge of stability,
where gradient descent keeps the sharpness at :math:`2/\\eta` (Cohen et al., ICLR 2021,
arXiv 2103.00065); well below 1 is the stable regime.

Example:
    >>> f = parse_where("lr<0.05")
    >>> f.matches({"lr": 0.02}), f.matches({"lr": 0.1}), f.matches({"lr": None})
    (True, False, False)
    >>> parse_where("model=fc-tanh,fc-relu").matches({"model": "fc-relu"})
    True
    >>> print(format_table([{"lr": 0.1, "loss": 0.25}, {"lr": 0.02, "loss": None}]))
    lr    loss
    0.1   0.25
    0.02  -
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eoslab.core.config import TrainConfig
from eoslab.core.store import RunStore
from eoslab.core.train import Run

__all__ = ["Filter", "format_table", "parse_where", "run_values", "sharpness_band",
           "stored_runs"]

CONFIG_FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
RUN_FIELDS = ["key", "status", "final_loss", "steps_done", "sharpness"]
_OPS = {"<=": operator.le, ">=": operator.ge, "!=": operator.ne, "==": operator.eq,
        "<": operator.lt, ">": operator.gt, "=": operator.eq}
_WHERE = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*(<=|>=|!=|==|<|>|=)\s*(.*?)\s*$")


def _literal(text: str):
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class Filter:
    """``name op values``: a record matches when ``op(record[name], value)`` holds."""

    name: str
    op: str
    values: tuple

    def matches(self, record: dict) -> bool:
        have = record.get(self.name)
        if self.op in ("=", "=="):
            return any(_equal(have, v) for v in self.values)
        if self.op == "!=":
            return not any(_equal(have, v) for v in self.values)
        if not isinstance(have, (int, float)) or isinstance(have, bool):
            return False
        return _OPS[self.op](have, self.values[0])


def _equal(have, want) -> bool:
    if isinstance(have, (int, float)) and isinstance(want, (int, float)):
        return float(have) == float(want)
    if isinstance(have, (list, tuple, dict)):
        return json.dumps(have) == json.dumps(want) or str(have) == str(want)
    if isinstance(have, str) and isinstance(want, str) and have.startswith(want):
        return have[len(want):][:1] in ("", "@", " ")  # diverged@12, running (host:pid)
    return have == want or (have is not None and str(have) == str(want))


def parse_where(text: str) -> Filter:
    """A filter from ``"lr<0.05"``, ``"model=fc-tanh,fc-relu"``, ``"status!=diverged"``."""
    match = _WHERE.match(str(text))
    if not match:
        raise ValueError(f"--where {text!r} is not FIELD OP VALUE with OP one of "
                         f"{' '.join(_OPS)} (e.g. --where 'lr<0.05' --where model=fc-tanh)")
    name, op, raw = match.groups()
    name = name.replace("-", "_")
    allowed = CONFIG_FIELDS + RUN_FIELDS
    if name not in allowed:
        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"--where field {name!r} is unknown{hint}; fields: {', '.join(allowed)}")
    if op in ("=", "==", "!="):
        values = tuple(_literal(v.strip()) for v in raw.split(",")) if raw else ("",)
    else:
        value = _literal(raw)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"--where {text!r}: {op!r} compares numbers, got {raw!r}")
        values = (value,)
    return Filter(name, op, values)


def sharpness_band(run: Run | None) -> tuple[float, float] | None:
    """``(min, max)`` of sharpness times ``lr / 2`` over the last half of the recorded values."""
    if run is None:
        return None
    pairs = [(row["sharpness"], row.get("lr")) for row in run.history
             if row.get("sharpness") is not None and row.get("lr")]
    if not pairs:
        return None
    tail = [s * lr / 2 for s, lr in pairs[len(pairs) // 2:]]
    return min(tail), max(tail)


def run_values(config: TrainConfig | dict, run: Run | None, status: str | None = None) -> dict:
    """The fields a table or a filter sees: the config's, ``key``, and the run's outcome."""
    values = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
    key = config.key() if isinstance(config, TrainConfig) else values.pop("key", None)
    last = run.history[-1] if run is not None and run.history else {}
    sharp = [row["sharpness"] for row in (run.history if run else [])
             if row.get("sharpness") is not None]
    band = sharpness_band(run)
    values.update(key=key, status=status or (run.status if run is not None else "missing"),
                  final_loss=last.get("loss"), steps_done=run.steps_done if run else None,
                  sharpness=sharp[-1] if sharp else None,
                  band=f"{band[0]:.2f}-{band[1]:.2f}" if band else None)
    if run is not None and run.diverged_at:
        values["status"] = f"diverged@{run.diverged_at[0]}"
    return values


def stored_runs(store: RunStore, lease: float | None = None) -> list[dict]:
    """A record (:func:`run_values`) per key in the store's ``runs``, in-progress ones too."""
    from eoslab.core.claims import DEFAULT_LEASE, Claims

    folder = store.root / "runs"
    claims = Claims(store, "runs", lease or DEFAULT_LEASE)
    records = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        blob = store.load_json("runs", entry.name)
        if blob is not None:
            try:
                run = Run.from_json(blob["run"])
                records.append(run_values({**blob["config"], "key": entry.name}, run))
                continue
            except (KeyError, TypeError, ValueError):
                blob = None
        if (entry / "result.json").exists() or any(entry.glob("result.json.corrupt-*")):
            # the store moved a bad file aside (with a warning naming it): run it again
            records.append({"key": entry.name, "status": "unreadable"})
            continue
        holder = claims.holder(entry.name)
        if holder is not None:
            state = "abandoned" if holder["stale"] else "running"
            records.append({"key": entry.name,
                            "status": f"{state} ({holder.get('host', '?')}:"
                                      f"{holder.get('pid', '?')})"})
    return records


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def format_table(rows: Sequence[dict], columns: Iterable[str] | None = None,
                 headers: dict | None = None) -> str:
    """Plain-text columns, left-aligned, two spaces apart (``-`` for a missing value)."""
    rows = list(rows)
    columns = list(columns) if columns is not None else list(dict.fromkeys(
        k for row in rows for k in row))
    headers = headers or {}
    table = [[headers.get(c, c) for c in columns]]
    table += [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip()
                     for line in table)


def varying(records: Sequence[dict], fields: Sequence[str] = CONFIG_FIELDS) -> list[str]:
    """The ``fields`` whose values differ between ``records`` (in ``fields`` order)."""
    return [f for f in fields
            if len({json.dumps(r.get(f), sort_keys=True, default=str) for r in records}) > 1]
