"""Text exports of a run or a chapter result: CSV, JSON, and the Python that reproduces it.

Pure functions with no widget or chart dependency (the chart exports, SVG and PNG, live in
:mod:`eoslab.ui.export`).

* :func:`rows_csv`: records to CSV, the columns being the union of the records' keys in
  first-seen order.  ``None`` is an empty cell; a non-finite float is written ``nan``,
  ``inf`` or ``-inf``, which Python's ``float`` reads back; other floats use ``repr``, so
  ``float(cell)`` gives the very same number; lists and dicts are written as JSON.
* :func:`datasets_rows` / :func:`datasets_csv`: several named datasets as one table with a
  ``dataset`` column naming each row's dataset.
* :func:`datasets_json`: strict JSON (no ``NaN`` tokens): a non-finite float becomes
  ``null``, as in the charts' datasets (:func:`eoslab.ui.plots.clean`).
* :func:`config_code`: the Python source that builds a
  :class:`~eoslab.core.config.TrainConfig` (only its non-default fields) and trains it
  with :func:`eoslab.run`.
* :func:`chapter_code`: the Python source that reruns a chapter app's experiment on a
  preset and settings, widget-free.

Example:
    >>> print(rows_csv([{"step": 0, "loss": 1.5}, {"step": 10, "sharpness": float("inf")}]))
    step,loss,sharpness
    0,1.5,
    10,,inf
    <BLANKLINE>
    >>> datasets_json({"a": [{"x": float("nan")}]})
    '{"a": [{"x": null}]}'
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["chapter_code", "config_code", "datasets_csv", "datasets_json", "datasets_rows",
           "json_ready", "rows_csv", "safe_stem"]


def json_ready(value):
    """``value`` with numpy scalars made Python, tuples made lists, non-finite floats ``None``."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        return repr(value)  # 'inf', '-inf' or the shortest exact decimal
    if isinstance(value, np.integer):
        return str(int(value))
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(json_ready(value), separators=(",", ":"))
    return str(value)


def rows_csv(rows: Sequence[Mapping]) -> str:
    """Records as CSV text (see the module docs for how values are written).

    >>> rows_csv([]) == ""
    True
    """
    rows = list(rows)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"rows[{i}] is a {type(row).__name__}; each row must be a dict")
    columns = list(dict.fromkeys(str(k) for row in rows for k in row))
    if not columns:
        return ""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = {str(k): v for k, v in row.items()}
        writer.writerow([_cell(values.get(c)) for c in columns])
    return out.getvalue()


def datasets_rows(datasets: Mapping[str, Sequence[Mapping]]) -> list[dict]:
    """Every dataset's rows in one list, each with ``dataset`` (its name) first.

    A row's own ``dataset`` field, if any, is kept as ``dataset_``.

    >>> datasets_rows({"a": [{"x": 1}], "b": [{"x": 2, "y": 3}]})
    [{'dataset': 'a', 'x': 1}, {'dataset': 'b', 'x': 2, 'y': 3}]
    """
    if not isinstance(datasets, Mapping):
        raise ValueError(f"datasets is a {type(datasets).__name__}; use a dict of name -> rows")
    out = []
    for name, rows in datasets.items():
        for row in rows:
            fields = {("dataset_" if k == "dataset" else k): v for k, v in row.items()}
            out.append({"dataset": str(name), **fields})
    return out


def datasets_csv(datasets: Mapping[str, Sequence[Mapping]]) -> str:
    """Several named datasets as one CSV with a ``dataset`` column."""
    return rows_csv(datasets_rows(datasets))


def datasets_json(datasets) -> str:
    """``datasets`` (any JSON-like value) as strict JSON; non-finite floats become ``null``."""
    return json.dumps(json_ready(datasets), allow_nan=False)


def safe_stem(text: str) -> str:
    """A file stem of letters, digits, ``.``, ``_`` and ``-`` (others become ``-``).

    >>> safe_stem("ch02 quick/lr=0.3")
    'ch02-quick-lr-0.3'
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")
    return stem or "export"


def config_code(config) -> str:
    """Python source that builds ``config`` (its non-default fields) and trains it.

    The run happens under ``if __name__ == "__main__":`` (true in a notebook cell or a
    script), so importing or ``exec``-ing the text with another ``__name__`` only builds
    ``config``.
    """
    from eoslab.core.config import TrainConfig

    if not isinstance(config, TrainConfig):
        raise ValueError(f"config is a {type(config).__name__}; use a TrainConfig")
    lines = []
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        value = getattr(config, f.name)
        if value != default:
            lines.append(f"    {f.name}={value!r},")
    body = "\n".join(lines)
    return ("import eoslab\nfrom eoslab import TrainConfig\n\n"
            + (f"config = TrainConfig(\n{body}\n)\n" if lines else "config = TrainConfig()\n")
            + "\nif __name__ == \"__main__\":\n"
            + "    result = eoslab.run(config)  # from the store when it has this config\n"
            + "    print(result.summary())\n")


def chapter_code(chapter: str, preset_name: str, settings: Mapping) -> str:
    """Python source that reruns chapter ``chapter``'s experiment, as its app did.

    The experiment is ``eoslab.chapters.chNN_<slug>.experiment.experiment``, called with
    the preset ``preset_name`` and ``settings`` (the app's control values); the result is
    the JSON-ready dict the app draws (``result["datasets"]``).
    """
    from eoslab.chapters.presets import CHAPTER_SLUGS, PRESET_NAMES, chapter_id

    number = chapter_id(chapter)
    if preset_name not in PRESET_NAMES:
        raise ValueError(f"preset {preset_name!r} is not allowed; allowed: "
                         f"{', '.join(PRESET_NAMES)}")
    if not isinstance(settings, Mapping):
        raise ValueError(f"settings is a {type(settings).__name__}; use a dict")
    module = f"eoslab.chapters.ch{number}_{CHAPTER_SLUGS[number]}.experiment"
    shown = "".join(f"\n    {str(k)!r}: {v!r}," for k, v in settings.items())
    return (f"from eoslab.chapters.presets import get_preset\n"
            f"from {module} import experiment\n\n"
            f"preset = get_preset({number!r}, {preset_name!r})\n"
            f"settings = {{{shown}{chr(10) if shown else ''}}}\n"
            "\nif __name__ == \"__main__\":\n"
            "    result = experiment(preset, settings)\n"
            "    print(result[\"status\"], {k: len(v) for k, v in result[\"datasets\"].items()})\n")
