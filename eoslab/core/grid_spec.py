"""A grid of experiments: every combination of values of some :class:`TrainConfig` fields.

An axis names one field and its values; the grid is the Cartesian product of its axes over
a base config (the last axis varies fastest).  On the command line an axis is
``--grid FIELD=VALUES``:

================================  =================================================
``lr=0.01,0.02,0.04``             a list (float fields also take fractions: ``lr=2/30``)
``model_seed=0:4``                an integer range, end excluded as in Python: 0, 1, 2, 3
``model_seed=0:10:2``             a range with a step: 0, 2, 4, 6, 8
``width=none,32``                 ``none`` where the field may be ``None``
``betas=[[0.9,0.99],[0.8,0.9]]``  a JSON list, for any field (dict and tuple fields need it)
================================  =================================================

A grid file (``.json``, or ``.yaml`` / ``.yml`` with PyYAML) is either
``{"base": {FIELD: VALUE, ...}, "grid": {FIELD: [VALUES] or "a:b", ...}}`` or one flat
mapping whose lists (and range strings of integer fields) are axes and whose scalars are
fixed values.

Every value is checked before any work: its type against the field's, then each value alone
through :class:`TrainConfig` (which names what is allowed), then every grid point, then one
setup (data, model, optimiser, schedule) per distinct architecture.  A failure raises
``ValueError`` naming the field and the value.

Example:
    >>> grid = build_grid({"steps": 20}, [parse_axis("lr=0.1,0.2"), parse_axis("model_seed=0:2")],
    ...                   deep=False)
    >>> len(grid), [(c.lr, c.model_seed) for c in grid.configs()][:3]
    (4, [(0.1, 0), (0.1, 1), (0.2, 0)])
    >>> parse_axis("lrr=0.1")
    Traceback (most recent call last):
    ...
    ValueError: unknown grid field 'lrr' (did you mean 'lr'?); fields: dataset, n_train, \
classes, data_seed, data_options, model, width, depth, model_seed, loss, optimizer, lr, \
momentum, weight_decay, betas, eps, optimizer_options, schedule, schedule_options, batch_size, \
steps, seed, record_every, sharpness_every, chunk_size, dtype, device, divergence_factor
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from eoslab.core.config import TrainConfig

__all__ = ["Grid", "build_grid", "check_buildable", "load_grid_file", "parse_axis"]

_FIELDS = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
# fields that cannot make a setup fail on their own (checked by TrainConfig or harmless)
_NOT_IN_SETUP = ("lr", "model_seed", "seed", "steps", "record_every", "sharpness_every",
                 "divergence_factor", "device", "data_seed")


def _check_field(name) -> str:
    if name not in _FIELDS:
        close = difflib.get_close_matches(str(name), _FIELDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown grid field {name!r}{hint}; fields: {', '.join(_FIELDS)}")
    return name


def _int_range(name: str, text: str) -> list[int]:
    parts = text.split(":")
    try:
        bounds = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"grid value {name}={text!r} is not a range of integers; "
                         "use start:stop or start:stop:step (stop excluded)") from None
    if len(bounds) not in (2, 3) or (len(bounds) == 3 and bounds[2] == 0):
        raise ValueError(f"grid value {name}={text!r} is not a range; use start:stop or "
                         "start:stop:step with a nonzero step (stop excluded)")
    return list(range(*bounds))


def _convert(name: str, value, from_text: bool):
    """``value`` as the type of field ``name`` (text from the command line is parsed)."""
    kind = _FIELDS[name]
    from_text = from_text or (isinstance(value, str) and kind in ("int", "int | None", "float"))
    if kind.endswith("| None") and (value is None or (from_text and value.lower() == "none")):
        return None
    if kind.startswith("int"):
        if from_text:
            try:
                return int(value)
            except ValueError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            return value
        extra = " or none" if kind.endswith("| None") else ""
        raise ValueError(f"grid value {name}={value!r} is not an integer{extra}")
    if kind == "float":
        if from_text:
            try:
                return float(Fraction(value)) if "/" in value else float(value)
            except (ValueError, ZeroDivisionError):
                pass
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"grid value {name}={value!r} is not a number")
    if kind == "str":
        if isinstance(value, str):
            return value
        raise ValueError(f"grid value {name}={value!r} is not a string")
    wanted = dict if kind == "dict" else (list, tuple)
    if from_text or not isinstance(value, wanted):
        raise ValueError(f"grid value {name}={value!r} is not a {kind}; give the axis as a JSON "
                         f"list, e.g. {name}=[...,...], or use a grid file")
    return value


def _values(name: str, raw) -> list:
    """The axis values of ``raw``: a list, a range string, or comma-separated text."""
    from_text = isinstance(raw, str)
    if from_text and raw.strip().startswith("["):
        try:
            raw, from_text = json.loads(raw), False
        except json.JSONDecodeError as err:
            raise ValueError(f"grid value {name}={raw!r} is not a JSON list: {err}") from None
        if not isinstance(raw, list):
            raise ValueError(f"grid value {name}={raw!r} is not a JSON list")
    if from_text:
        raw = raw.strip()
        if ":" in raw and _FIELDS[name].startswith("int"):
            values = _int_range(name, raw)
        elif ":" in raw and _FIELDS[name] == "float":
            raise ValueError(f"grid value {name}={raw!r}: ranges start:stop[:step] are for "
                             f"integer fields; list the values, e.g. {name}=0.01,0.02,0.04")
        else:
            values = [_convert(name, v.strip(), True) for v in raw.split(",") if v.strip()]
    elif isinstance(raw, list):
        values = [_convert(name, v, False) for v in raw]
    else:
        raise ValueError(f"grid field {name!r} takes a list of values, got {raw!r}")
    if not values:
        raise ValueError(f"grid field {name!r} has no values; give at least one, e.g. "
                         f"--grid {name}=V1,V2")
    seen = []
    for v in values:
        if v in seen:
            raise ValueError(f"grid field {name!r} repeats the value {v!r}; give distinct values")
        seen.append(v)
    return values


def parse_axis(text: str) -> tuple[str, list]:
    """``"lr=0.01,0.02"`` -> ``("lr", [0.01, 0.02])`` (see the module docstring's syntax)."""
    name, sep, raw = str(text).partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not name:
        raise ValueError(f"grid axis {text!r} needs the form FIELD=V1,V2 (e.g. lr=0.01,0.02 or "
                         "model_seed=0:4)")
    return _check_field(name), _values(name, raw)


@dataclass(frozen=True)
class Grid:
    """A base config and axes ``{field: values}``; :meth:`configs` is their product."""

    base: TrainConfig
    axes: dict

    def __len__(self) -> int:
        return math.prod(len(v) for v in self.axes.values())

    def configs(self) -> list[TrainConfig]:
        names = list(self.axes)
        return [self.base.replace(**dict(zip(names, combo)))
                for combo in itertools.product(*self.axes.values())]

    def point(self, config: TrainConfig) -> dict:
        """The axis values of ``config`` (the columns of the grid's table)."""
        return {name: getattr(config, name) for name in self.axes}


def _describe(point: Mapping) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in point.items())


def build_grid(base: Mapping | TrainConfig, axes: Iterable[tuple[str, Sequence]] | Mapping, *,
               deep: bool = True, skip_missing_data: bool = False) -> Grid:
    """Validate a base config and axes, then every grid point; see the module docstring.

    Args:
        base: fixed field values (a dict, e.g. parsed flags) or a config.
        axes: ``(field, values)`` pairs or a mapping; a field may appear once.
        deep: also build the data, model, optimiser and schedule once per architecture.
        skip_missing_data: in the deep check, pass datasets whose files (or loader, e.g.
            torchvision) this machine lacks: a cluster's workers may hold them.
    """
    base = base if isinstance(base, TrainConfig) else TrainConfig.from_dict(dict(base))
    pairs = list(axes.items()) if isinstance(axes, Mapping) else list(axes)
    checked: dict[str, list] = {}
    for name, values in pairs:
        name = _check_field(name)
        if name in checked:
            raise ValueError(f"grid field {name!r} is given twice; give it one list of values")
        checked[name] = _values(name, values if isinstance(values, str) else list(values))
    for name, values in checked.items():
        for value in values:
            try:
                base.replace(**{name: value})
            except (ValueError, TypeError) as err:
                raise ValueError(f"grid value {name}={value!r} is rejected: {err}") from None
    grid = Grid(base, checked)
    names = list(checked)
    for combo in itertools.product(*checked.values()):
        try:
            base.replace(**dict(zip(names, combo)))
        except (ValueError, TypeError) as err:
            raise ValueError(f"grid point {_describe(dict(zip(names, combo)))} is rejected: "
                             f"{err}") from None
    if deep:
        check_buildable(grid, skip_missing_data=skip_missing_data)
    return grid


def check_buildable(grid: Grid, *, skip_missing_data: bool = False) -> None:
    """Build one setup per distinct architecture of ``grid`` on the CPU; name what fails."""
    from eoslab.core.experiment import build_setup

    seen = set()
    for config in grid.configs():
        signature = json.dumps({k: v for k, v in config.to_dict().items()
                                if k not in _NOT_IN_SETUP}, sort_keys=True, default=str)
        if signature in seen:
            continue
        seen.add(signature)
        try:
            build_setup(config.replace(device="cpu"))
        except (FileNotFoundError, ImportError) as err:
            if not skip_missing_data:
                raise ValueError(f"grid point {_describe(grid.point(config))} cannot load its "
                                 f"data on this machine: {err}") from None
        except (ValueError, TypeError, RuntimeError) as err:
            raise ValueError(f"grid point {_describe(grid.point(config))} is rejected: "
                             f"{err}") from None


def _yaml_loader(yaml):
    """PyYAML's SafeLoader reading ``2:6`` as the text of a range, not YAML 1.1's 2*60+6."""

    class Loader(yaml.SafeLoader):
        pass

    ranges = re.compile(r"^[-+]?[0-9]+(?::[-+]?[0-9]+){1,2}$")
    resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    for first in "+-0123456789":
        resolvers.setdefault(first, []).insert(0, ("tag:yaml.org,2002:str", ranges))
    Loader.yaml_implicit_resolvers = resolvers
    return Loader


def load_grid_file(path: str | Path) -> tuple[dict, dict]:
    """``(base, axes)`` from a JSON or YAML grid file (see the module docstring)."""
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ImportError(f"{path} is YAML, which needs PyYAML: pip install pyyaml "
                              "(or write the grid as JSON)") from None
        try:
            blob = yaml.load(text, Loader=_yaml_loader(yaml))  # a SafeLoader subclass
        except yaml.YAMLError as err:
            raise ValueError(f"grid file {path} is not valid YAML: {err}") from None
    else:
        try:
            blob = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"grid file {path} is not valid JSON: {err}") from None
    if not isinstance(blob, dict):
        raise ValueError(f"grid file {path} must hold a mapping of fields, got "
                         f"{type(blob).__name__}")
    if "grid" in blob or "base" in blob:
        extra = sorted(set(blob) - {"grid", "base"})
        if extra:
            raise ValueError(f"grid file {path} has keys {extra}; allowed: base, grid")
        base, axes = dict(blob.get("base") or {}), dict(blob.get("grid") or {})
        if not axes:
            raise ValueError(f"grid file {path} has no axes under 'grid'")
        both = sorted(set(base) & set(axes))
        if both:
            raise ValueError(f"grid file {path} gives {both} in both base and grid")
        return base, axes
    base, axes = {}, {}
    for name, value in blob.items():
        _check_field(name)
        is_range = (isinstance(value, str) and ":" in value and _FIELDS[name].startswith("int"))
        # a tuple field's fixed value is itself a list: its axis is a list of lists
        is_list = isinstance(value, list) and (_FIELDS[name] != "tuple" or all(
            isinstance(v, list) for v in value))
        if is_list or is_range:
            axes[name] = value
        else:
            base[name] = value
    return base, axes
