"""Allowed options and sizes of a run: the one source that every entry point checks against.

:class:`~eoslab.core.config.TrainConfig`, :func:`~eoslab.core.data.load_dataset` and
:func:`~eoslab.core.optim.make_scheduler` all validate through this module, so a value
refused by one is refused by all with the same message.

Each dataset and each learning-rate schedule takes a fixed set of named options
(:data:`DATA_OPTIONS`, :data:`SCHEDULE_OPTIONS`).  An unknown name is refused with the
allowed ones, and every value is checked against its stated range:

    >>> check_data_options("quadratic", {"spectrun": [100, 1]})
    Traceback (most recent call last):
    ...
    ValueError: unknown data option 'spectrun' for dataset 'quadratic'; allowed: spectrum, rotate
    >>> check_data_options("teacher", {"dim": 0})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: data option dim=0 for dataset 'teacher' is not allowed; use an integer in [1, ...]

Sizes have stated upper bounds (:data:`MAX_STEPS`, :data:`MAX_EXAMPLES`, :data:`MAX_WIDTH`,
:data:`MAX_DEPTH`, :data:`MAX_FEATURES`), and :func:`estimate_memory` sizes a run before
anything is allocated: the data (float64 while it is prepared, then in the run's dtype),
the parameters with their gradients and two optimiser buffers, and the activations of one
forward/backward pass.  :func:`check_memory` refuses a run over :data:`MAX_MEMORY_BYTES`
with that estimate, instead of letting it fail inside the allocator.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from eoslab.core.checks import (
    check_int,
    dtype_max,
    finite,
    interval,
    is_integer,
    is_number,
    show,
)

__all__ = ["CIFAR_PATTERN", "DATA_OPTIONS", "MAX_DEPTH", "MAX_EXAMPLES", "MAX_FEATURES",
           "MAX_MEMORY_BYTES", "MAX_SEED", "MAX_STEPS", "MAX_WIDTH", "SCHEDULE_OPTIONS",
           "OPTIMIZER_OPTIONS", "Option", "check_classes", "check_data_options",
           "check_optimizer_options", "check_n_train",
           "check_schedule_options", "dataset_family", "dataset_shape", "image_shape"]

MAX_STEPS = 10**7
"""Upper bound of ``steps``, ``record_every``, ``sharpness_every`` and schedule periods."""
MAX_EXAMPLES = 10**7
"""Upper bound of ``n_train``, ``n_test``, ``batch_size`` and ``chunk_size``."""
MAX_WIDTH = 2**16
"""Upper bound of a model's ``width`` (hidden units or channels)."""
MAX_DEPTH = 1000
"""Upper bound of a model's ``depth`` (hidden layers or blocks)."""
MAX_FEATURES = 10**5
"""Upper bound of the ``teacher`` dataset's ``dim`` and ``teacher_width``."""
MAX_SPECTRUM = 4096
"""Most eigenvalues a ``quadratic`` spectrum may have (its features are a dense d x d matrix)."""
MAX_EIGENVALUE = 1e12
"""Largest eigenvalue of a ``quadratic`` spectrum."""
MAX_SEED = 2**32 - 1
"""Upper bound of every seed."""
MAX_MEMORY_BYTES = 16 * 2**30
"""Largest estimated memory of one run (16 GiB)."""
CIFAR_PATTERN = re.compile(r"^cifar10-(\d+)k$")
"""``cifar10-<n>k``: the first ``n`` thousand CIFAR-10 training images."""
CIFAR_THOUSANDS = (1, 50)
"""Allowed ``n`` of ``cifar10-<n>k`` (CIFAR-10 has 50 000 training images)."""


@dataclass(frozen=True)
class Option:
    """One named option: its kind, default and allowed range.

    ``kind`` is ``"int"``, ``"number"``, ``"rate"`` (a learning rate: a number in
    ``[0, the dtype's largest]``), ``"bool"``, ``"path"`` or ``"spectrum"`` (a list of
    1 to :data:`MAX_SPECTRUM` eigenvalues in ``[0, MAX_EIGENVALUE]``).  ``default=None``
    with ``nullable`` means "decided by the loader" (e.g. the rest of the data).
    """

    kind: str
    default: Any = None
    low: float = 0
    high: float = math.inf
    low_open: bool = False
    nullable: bool = False

    def describe(self, rate_max: float = math.inf) -> str:
        if self.kind == "bool":
            return "true or false"
        if self.kind == "path":
            return "a folder path"
        if self.kind == "spectrum":
            return (f"a list of 1 to {MAX_SPECTRUM} eigenvalues, each a finite number in "
                    f"[0, {MAX_EIGENVALUE:g}]")
        high = rate_max if self.kind == "rate" else self.high
        what = "an integer" if self.kind == "int" else "a finite number"
        extra = " or None" if self.nullable else ""
        return f"{what} in {interval(self.low, high, self.low_open)}{extra}"

    def valid(self, value, rate_max: float = math.inf) -> bool:
        if value is None:
            return self.nullable
        if self.kind == "bool":
            return isinstance(value, (bool, np.bool_))
        if self.kind == "path":
            return isinstance(value, (str, os.PathLike))
        if self.kind == "spectrum":
            if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__"):
                return False
            values = list(value)
            return 1 <= len(values) <= MAX_SPECTRUM and all(
                is_number(v) and finite(v) and 0 <= v <= MAX_EIGENVALUE for v in values)
        if self.kind == "int" and not is_integer(value):
            return False
        if not (is_number(value) and finite(value)):
            return False
        high = rate_max if self.kind == "rate" else self.high
        return (self.low < value if self.low_open else self.low <= value) and value <= high


def _n_test(high: int) -> Option:
    return Option("int", None, 0, high, nullable=True)


DATA_OPTIONS: dict[str, dict[str, Option]] = {
    "digits": {"n_test": _n_test(1796)},
    "cifar10-<n>k": {"n_test": _n_test(10_000), "root": Option("path", None, nullable=True)},
    "quadratic": {"spectrum": Option("spectrum", (4.0, 1.0)), "rotate": Option("bool", True)},
    "teacher": {"n_test": _n_test(MAX_EXAMPLES), "dim": Option("int", 20, 1, MAX_FEATURES),
                "teacher_width": Option("int", 50, 1, MAX_FEATURES)},
    "sine": {"n_test": _n_test(MAX_EXAMPLES)},
    "moons": {"n_test": _n_test(MAX_EXAMPLES), "noise": Option("number", 0.1, 0, 100)},
    "circles": {"n_test": _n_test(MAX_EXAMPLES), "noise": Option("number", 0.1, 0, 100)},
}
"""Each dataset's options (``n_test``: test examples; ``None`` = the dataset's default)."""

_PERIOD = Option("int", None, 1, MAX_STEPS, nullable=True)
SCHEDULE_OPTIONS: dict[str, dict[str, Option]] = {
    "constant": {},
    "cosine": {"eta_min": Option("rate", 0.0)},
    "step": {"step_size": _PERIOD, "gamma": Option("number", 0.1, 0, 1, low_open=True)},
    "linear-warmup": {"start_factor": Option("number", 0.01, 0, 1, low_open=True),
                      "warmup": _PERIOD},
    "cosine-restarts": {"T_0": _PERIOD, "T_mult": Option("int", 1, 1, 100),
                        "eta_min": Option("rate", 0.0)},
    "triangular": {"base_lr": Option("rate", None, nullable=True), "step_size_up": _PERIOD},
}
"""Each schedule's options (``None``: a default computed from ``steps`` or ``lr``)."""

OPTIMIZER_OPTIONS: dict[str, dict[str, Option]] = {
    "sam": {"rho": Option("number", 0.05, 0, 1e6)},
    "label-noise": {"sigma": Option("number", 0.1, 0, 1e6)},
}
"""Options of the optimisers that take any: SAM's radius ``rho`` (Foret et al. 2021) and
label-noise SGD's noise std ``sigma`` (Damian et al. 2021). The others take none."""


def dataset_family(name) -> str | None:
    """The :data:`DATA_OPTIONS` key of a dataset name (``cifar10-5k`` -> ``cifar10-<n>k``).

    ``None`` for a name that is not a dataset (including ``cifar10-<n>k`` with ``n``
    outside :data:`CIFAR_THOUSANDS`).
    """
    if not isinstance(name, str):
        return None
    match = CIFAR_PATTERN.match(name)
    if match:
        low, high = CIFAR_THOUSANDS
        return "cifar10-<n>k" if low <= int(match.group(1)) <= high else None
    return name if name in DATA_OPTIONS else None


def _check_options(table: dict[str, Option], given, what: str, owner: str,
                   rate_max: float = math.inf) -> dict:
    if not isinstance(given, Mapping):
        field = what.replace(" ", "_") + "s"
        raise ValueError(f"{field}={show(given)} is not allowed; use a dict (a JSON object) "
                         f"of {what}s for {owner}; allowed: {', '.join(table) or 'none'}")
    for key, value in given.items():
        if key not in table:
            raise ValueError(f"unknown {what} {show(key)} for {owner}; allowed: "
                             f"{', '.join(table) or 'none'}")
        if not table[key].valid(value, rate_max):
            raise ValueError(f"{what} {key}={show(value)} for {owner} is not allowed; use "
                             f"{table[key].describe(rate_max)}")
    return dict(given)


def check_data_options(dataset: str, options, *, fill: bool = False) -> dict:
    """Validate a dataset's options; with ``fill``, return them completed by the defaults.

    Raises:
        ValueError: an unknown dataset, an option it does not take (with the allowed
            ones) or a value out of its range (with the range).
    """
    family = dataset_family(dataset)
    if family is None:
        raise ValueError(f"unknown dataset {show(dataset)}; allowed: {', '.join(DATA_OPTIONS)}")
    table = DATA_OPTIONS[family]
    checked = _check_options(table, options, "data option", f"dataset {dataset!r}")
    if fill:
        checked = {**{k: o.default for k, o in table.items()}, **checked}
    return checked


def check_schedule_options(schedule: str, options, dtype="float32", *,
                           rate_max: float | None = None) -> dict:
    """Validate a schedule's options; learning rates among them must fit ``dtype``.

    ``rate_max`` overrides the largest learning rate (default: the dtype's largest number).
    """
    if schedule not in SCHEDULE_OPTIONS:
        raise ValueError(f"unknown schedule {show(schedule)}; allowed: "
                         f"{', '.join(SCHEDULE_OPTIONS)}")
    return _check_options(SCHEDULE_OPTIONS[schedule], options, "schedule option",
                          f"schedule {schedule!r}",
                          dtype_max(dtype) if rate_max is None else rate_max)


def check_optimizer_options(optimizer: str, options, *, fill: bool = False) -> dict:
    """Validate an optimiser's options; with ``fill``, complete them with the defaults.

    >>> check_optimizer_options("sam", {"rho": -1})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: optimizer option rho=-1 for optimizer 'sam' is not allowed; use a finite ...
    >>> check_optimizer_options("label-noise", {}, fill=True)
    {'sigma': 0.1}
    """
    table = OPTIMIZER_OPTIONS.get(optimizer, {})
    checked = _check_options(table, options, "optimizer option", f"optimizer {optimizer!r}")
    if fill:
        checked = {**{k: o.default for k, o in table.items()}, **checked}
    return checked


def check_classes(dataset: str, classes) -> None:
    """``classes``: ``None``, a count in [2, 10] or 2 to 10 distinct labels in [0, 9].

    Only the classification image sets (``digits``, ``cifar10-<n>k``) select classes.
    """
    if classes is None:
        return
    family = dataset_family(dataset)
    if family not in ("digits", "cifar10-<n>k"):
        raise ValueError(f"classes={show(classes)} is not allowed for dataset {dataset!r}; "
                         "only digits and cifar10-<n>k select classes, so use None")
    if is_integer(classes):
        ok = 2 <= classes <= 10
    else:
        ok = (isinstance(classes, (list, tuple)) and 2 <= len(classes) <= 10
              and all(is_integer(c) and 0 <= c <= 9 for c in classes)
              and len(set(classes)) == len(classes))
    if not ok:
        raise ValueError(f"classes={show(classes)} is not allowed; use None, a count in "
                         "[2, 10] or a list of 2 to 10 distinct labels in [0, 9]")


def _default_n_train(family: str, dataset: str, options: Mapping) -> int:
    if family == "cifar10-<n>k":
        return 1000 * int(CIFAR_PATTERN.match(dataset).group(1))
    if family == "quadratic":
        return len(list(options.get("spectrum", DATA_OPTIONS["quadratic"]["spectrum"].default)))
    return {"digits": 1000, "teacher": 500, "sine": 64}.get(family, 200)


def check_n_train(dataset: str, n_train, options: Mapping | None = None) -> int:
    """Validate ``n_train`` for ``dataset``; return the number of training examples.

    ``digits`` has 1796 to train on (one example is always kept for testing),
    ``cifar10-<n>k`` the ``n`` thousand images its name says (``n_train`` takes the first
    ones), and ``quadratic`` one example per eigenvalue, so it takes ``None`` (or exactly
    that size); the others allow up to :data:`MAX_EXAMPLES`.
    """
    family = dataset_family(dataset)
    options = options or {}
    size = _default_n_train(family, dataset, options)
    if n_train is None:
        return size
    if family == "quadratic":
        if not (is_integer(n_train) and n_train == size):
            raise ValueError(f"n_train={show(n_train)} is not allowed for dataset "
                             f"{dataset!r} (it has one example per eigenvalue of its "
                             f"spectrum); use None or {size}")
        return size
    high = {"digits": 1796, "cifar10-<n>k": size}.get(family, MAX_EXAMPLES)
    return check_int("n_train", n_train, 1, high, note=f" for dataset {dataset!r}")


def dataset_shape(dataset: str, options: Mapping | None = None, classes=None
                  ) -> tuple[tuple[int, ...], int, bool]:
    """``(input_shape, n_outputs, classification)`` of a dataset, without loading it."""
    family = dataset_family(dataset)
    options = options or {}
    n_classes = 10 if classes is None else classes if is_integer(classes) else len(classes)
    if family == "digits":
        return (64,), n_classes, True
    if family == "cifar10-<n>k":
        return (3, 32, 32), n_classes, True
    if family == "quadratic":
        return (_default_n_train(family, dataset, options),), 1, False
    if family == "teacher":
        return (int(options.get("dim", DATA_OPTIONS["teacher"]["dim"].default)),), 1, False
    if family == "sine":
        return (1,), 1, False
    return (2,), 2, True


def image_shape(input_shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """``(C, H, W)`` a convolutional model reads ``input_shape`` as, or ``None``."""
    if len(input_shape) == 3:
        return input_shape  # type: ignore[return-value]
    if len(input_shape) == 1 and math.isqrt(input_shape[0]) ** 2 == input_shape[0]:
        side = math.isqrt(input_shape[0])
        return (1, side, side)
    return None


