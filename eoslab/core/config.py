"""The experiment configuration: one frozen dataclass, validated on construction.

A :class:`TrainConfig` names everything a run depends on (data, model, loss, optimiser,
schedule, probes, precision), so its hash is the key of the run in the store.

Example:
    >>> cfg = TrainConfig(lr=0.2, steps=100)
    >>> cfg.replace(lr=0.4).lr
    0.4
    >>> TrainConfig(lr=1e39)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: lr=1e+39 is not allowed; use a finite number in (0, 3.40282e+38] (the range...
    >>> TrainConfig(dataset="quadratic", model="linear", data_options={"spectrun": [100, 1]})
    Traceback (most recent call last):
    ...
    ValueError: unknown data option 'spectrun' for dataset 'quadratic'; allowed: spectrum, rotate

Every field is checked on construction, and each message names the field, its value and
what is allowed: names against their lists; rates and factors as finite numbers the
``dtype`` can hold; counts as integers with stated upper bounds
(:mod:`eoslab.core.options`: ``steps`` <= 10**7, ``n_train``/``batch_size`` <= 10**7,
``width`` <= 65536, ``depth`` <= 1000); ``data_options`` and ``schedule_options`` against
the options of the chosen dataset and schedule; and the whole run against an estimate of
its memory (at most 16 GiB), so that a width of 10**9 is refused with its size instead of
failing in the allocator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import torch

from eoslab.core.checks import (
    check_int,
    check_number,
    dtype_max,
    is_integer,
    show,
)
from eoslab.core.data import DATASET_NAMES
from eoslab.core.devices import DTYPES
from eoslab.core.losses import LOSS_NAMES
from eoslab.core.memory import (
    check_memory,
    estimate_memory,
    format_bytes,
)
from eoslab.core.models import _DEFAULTS as _MODEL_DEFAULTS
from eoslab.core.models import MODEL_NAMES
from eoslab.core.optim import OPTIMIZER_NAMES, SCHEDULE_NAMES
from eoslab.core.options import (
    MAX_DEPTH,
    MAX_EXAMPLES,
    MAX_MEMORY_BYTES,
    MAX_SEED,
    MAX_STEPS,
    MAX_WIDTH,
    check_classes,
    check_data_options,
    check_n_train,
    check_optimizer_options,
    check_schedule_options,
    dataset_family,
    dataset_shape,
    image_shape,
)

__all__ = ["TrainConfig"]

# fields that change where a run executes but not what it computes
_NOT_IN_KEY = ("device", "record_every_seconds")
_CLASSIFICATION_LOSSES = ("ce", "cross-entropy", "sqrt-ce")
_CONV_MODELS = ("cnn", "cnn-bn", "resnet-small")
_BATCHNORM_MODELS = ("cnn-bn", "resnet-small", "si-mlp")


def _choice(name: str, value, allowed) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}={show(value)} is not allowed; allowed: {', '.join(allowed)}")


def _model_defaults(model: str) -> tuple[int, int]:
    return _MODEL_DEFAULTS["fc" if model.startswith("fc-") else model]


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on.

    Defaults reproduce the edge-of-stability setting of Cohen et al. 2021 scaled to the
    offline ``digits`` data: fc-tanh (width 200, two hidden layers), MSE, full-batch GD.
    ``batch_size=None`` means full batch; ``sharpness_every=0`` disables the sharpness probe.
    ``optimizer_options`` holds the options of the optimisers that take any
    (:data:`eoslab.core.options.OPTIMIZER_OPTIONS`: ``sam``'s ``rho``, ``label-noise``'s
    ``sigma``); left empty, they take their defaults and the run's key is unchanged.
    """

    dataset: str = "digits"
    n_train: int | None = None
    classes: int | None = None
    data_seed: int = 0
    data_options: dict = field(default_factory=dict)
    model: str = "fc-tanh"
    width: int | None = None
    depth: int | None = None
    model_seed: int = 0
    loss: str = "mse"
    optimizer: str = "gd"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    optimizer_options: dict = field(default_factory=dict)
    schedule: str = "constant"
    schedule_options: dict = field(default_factory=dict)
    batch_size: int | None = None
    steps: int = 500
    seed: int = 0
    record_every: int = 10
    sharpness_every: int = 0
    chunk_size: int | None = None
    dtype: str = "float32"
    device: str = "auto"
    divergence_factor: float = 1e3

    def __post_init__(self):
        self._check_names()
        self._check_numbers()
        self._check_counts()
        self._check_problem()
        self._check_sizes()
        self._check_memory()

    def _set(self, name: str, value) -> None:
        """Store a checked value; plain ``int``/``float`` stay as given (the key hashes them)."""
        if type(getattr(self, name)) not in (int, float):
            object.__setattr__(self, name, value)

    def _check_names(self) -> None:
        if dataset_family(self.dataset) is None:
            raise ValueError(f"dataset={show(self.dataset)} is not allowed; allowed: "
                             f"{', '.join(DATASET_NAMES)} (n in [1, 50])")
        _choice("model", self.model, MODEL_NAMES)
        _choice("loss", self.loss, LOSS_NAMES)
        _choice("optimizer", self.optimizer, OPTIMIZER_NAMES)
        _choice("schedule", self.schedule, SCHEDULE_NAMES)
        _choice("dtype", self.dtype, tuple(DTYPES))
        if self.device != "auto":
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError, ValueError):
                raise ValueError(f"device={show(self.device)} is not allowed; use 'auto', "
                                 "'cpu', 'cuda' or 'cuda:<n>'") from None

    def _check_numbers(self) -> None:
        """Rates, factors and betas: finite, in range, and representable in ``dtype``."""
        top = dtype_max(self.dtype)
        note = f" (the range of dtype={self.dtype!r})"
        betas = self.betas
        if (isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__")
                or len(betas) != 2):
            raise ValueError(f"betas={show(betas)} is not allowed; use a pair [b1, b2] of "
                             "numbers in [0, 1)")
        self._set("betas", tuple(check_number(f"betas[{i}]", b, 0, 1, high_open=True)
                                 for i, b in enumerate(betas)))
        self._set("momentum", check_number("momentum", self.momentum, 0, 1, high_open=True))
        self._set("weight_decay", check_number("weight_decay", self.weight_decay, 0, top,
                                               note=note))
        self._set("eps", check_number("eps", self.eps, 0, top, note=note))
        self._set("divergence_factor", check_number("divergence_factor",
                                                    self.divergence_factor, 1, top,
                                                    low_open=True))
        rate_top, rate_note = self._rate_range()
        self._set("lr", check_number("lr", self.lr, 0, rate_top, low_open=True,
                                     note=rate_note))
        if self.optimizer == "ngd" and (self.momentum or self.weight_decay):
            raise ValueError(f"momentum={self.momentum!r}, weight_decay={self.weight_decay!r} "
                             "are not allowed with optimizer 'ngd' (it takes neither); use 0")

    def _rate_range(self) -> tuple[float, str]:
        """The largest learning rate whose updates torch can form in ``dtype``, and why.

        Adam's first step is :math:`\\eta/(1-\\beta_1)` and AdamW multiplies the weights
        by :math:`1-\\eta\\lambda`; torch turns both into ``dtype`` scalars, which overflow
        past the dtype's largest number (a RuntimeError inside the optimiser).
        """
        top = dtype_max(self.dtype)
        rate, why = top, f"the range of dtype={self.dtype!r}"
        if self.optimizer in ("adam", "adamw") and self.betas[0] > 0:
            rate = top * (1 - self.betas[0])
            why += f" divided by Adam's 1/(1-betas[0]) = {1 / (1 - self.betas[0]):.4g}"
        if self.optimizer == "adamw" and self.weight_decay > 0:
            rate = min(rate, top / self.weight_decay)
            why += ", and lr * weight_decay within the dtype's range"
        return rate, f" ({why})"

    def _check_counts(self) -> None:
        """Steps, periods, batch sizes and seeds: integers with a stated upper bound."""
        for name, low, high, none in (
                ("steps", 1, MAX_STEPS, False), ("record_every", 1, MAX_STEPS, False),
                ("sharpness_every", 0, MAX_STEPS, False),
                ("batch_size", 1, MAX_EXAMPLES, True), ("chunk_size", 1, MAX_EXAMPLES, True),
                ("data_seed", 0, MAX_SEED, False), ("model_seed", 0, MAX_SEED, False),
                ("seed", 0, MAX_SEED, False)):
            self._set(name, check_int(name, getattr(self, name), low, high, allow_none=none))

    def _check_problem(self) -> None:
        """Options of the dataset and schedule, and the fields that must fit together."""
        self._set("data_options", check_data_options(self.dataset, self.data_options))
        self._set("optimizer_options", check_optimizer_options(self.optimizer,
                                                               self.optimizer_options))
        if self.optimizer == "label-noise" and self.loss in _CLASSIFICATION_LOSSES:
            raise ValueError(f"loss={self.loss!r} is not allowed with optimizer 'label-noise': "
                             "label noise needs real-valued targets; use 'mse' or 'sqrt-mse'")
        self._set("schedule_options", check_schedule_options(
            self.schedule, self.schedule_options, rate_max=self._rate_range()[0]))
        check_classes(self.dataset, self.classes)
        try:
            n_train = check_n_train(self.dataset, self.n_train, self.data_options)
        except ValueError as err:
            high = 1796 if self.dataset == "digits" else MAX_EXAMPLES
            raise ValueError(f"{err}{self._estimate_note('n_train', high)}") from None
        if self.n_train is not None:
            self._set("n_train", int(self.n_train))
        if is_integer(self.classes):
            self._set("classes", int(self.classes))
        if self.batch_size is not None and self.batch_size > n_train:
            raise ValueError(f"batch_size={self.batch_size} is not allowed; the dataset "
                             f"{self.dataset!r} has {n_train} training examples, so use an "
                             f"integer in [1, {n_train}] or None for full batch")
        if self.model in _BATCHNORM_MODELS:
            for name, value in (("batch_size", self.batch_size), ("chunk_size", self.chunk_size),
                                ("n_train", n_train)):
                if value is not None and value < 2:
                    raise ValueError(f"{name}={value} is not allowed for model {self.model!r}: "
                                     "BatchNorm needs at least 2 examples per batch; use 2 or "
                                     "more")
        shape, _, classification = dataset_shape(self.dataset, self.data_options, self.classes)
        if self.loss in _CLASSIFICATION_LOSSES and not classification:
            raise ValueError(f"loss={self.loss!r} is not allowed for dataset {self.dataset!r}: "
                             "it is a regression set; use 'mse' or 'sqrt-mse'")
        if self.model in _CONV_MODELS and image_shape(shape) is None:
            raise ValueError(f"model={self.model!r} is not allowed for dataset "
                             f"{self.dataset!r}: a convolutional model needs image inputs (a "
                             f"flat square length such as 64), but the inputs have shape "
                             f"{shape}; use an fc-* model")

    def _check_sizes(self) -> None:
        """``width`` and ``depth``: integers with a stated bound (and the memory they imply)."""
        lowest = 0 if self.model.startswith("fc-") or self.model == "resnet-small" else 1
        for name, low, high in (("width", 1, MAX_WIDTH), ("depth", lowest, MAX_DEPTH)):
            try:
                self._set(name, check_int(name, getattr(self, name), low, high,
                                          allow_none=True, note=f" for model {self.model!r}"))
            except ValueError as err:
                raise ValueError(f"{err}{self._estimate_note(name, high)}") from None

    def _estimate(self, **sizes) -> dict[str, float]:
        """:func:`~eoslab.core.memory.estimate_memory` of this run, with ``sizes`` replaced."""
        d_width, d_depth = _model_defaults(self.model)
        given = {"width": self.width, "depth": self.depth, "n_train": self.n_train, **sizes}
        n_train = given["n_train"]
        if n_train is None:
            n_train = check_n_train(self.dataset, None, self.data_options)
        chunk = min(self.chunk_size or n_train, n_train)
        batch = chunk if self.sharpness_every or not self.batch_size else self.batch_size
        return estimate_memory(
            dataset=self.dataset, options=self.data_options, classes=self.classes,
            n_train=n_train, model=self.model, width=given["width"] or d_width,
            depth=d_depth if given["depth"] is None else given["depth"], batch=batch,
            dtype=self.dtype)

    def _estimate_note(self, name: str, high: int) -> str:
        """``"; at width=10**9 this run would need about ..."`` for a size over its bound."""
        value = getattr(self, name)
        if (not is_integer(value) or not high < value < 10**30
                or dataset_family(self.dataset) in ("quadratic", "cifar10-<n>k")):
            return ""
        total = sum(self._estimate(**{name: int(value)}).values())
        return (f"; at {name}={value} this run would need about {format_bytes(total)} of "
                f"memory (the limit is {format_bytes(MAX_MEMORY_BYTES)})")

    def _check_memory(self) -> None:
        """Refuse sizes whose estimated memory is over the limit (with the estimate)."""
        check_memory(self._estimate(), {"width": self.width, "depth": self.depth,
                                "n_train": self.n_train, "batch_size": self.batch_size,
                                "chunk_size": self.chunk_size, "dtype": self.dtype})

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Build from a dict (e.g. JSON), rejecting unknown keys by name."""
        if not isinstance(values, dict):
            raise ValueError(f"a config must be a dict of TrainConfig fields, got "
                             f"{type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; allowed: {sorted(known)}")
        return cls(**values)

    def key(self) -> str:
        """A stable 16-hex-digit hash of the fields that determine the result."""
        values = {k: v for k, v in self.to_dict().items() if k not in _NOT_IN_KEY}
        if not values["optimizer_options"]:  # a field added later: old keys stay valid
            del values["optimizer_options"]
        blob = json.dumps(values, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
