"""The experiment configuration: one frozen dataclass, validated on construction.

A :class:`TrainConfig` names everything a run depends on (data, model, loss, optimiser,
schedule, probes, precision), so its hash is the key of the run in the store.

Example:
    >>> cfg = TrainConfig(lr=0.2, steps=100)
    >>> cfg.replace(lr=0.4).lr
    0.4
    >>> TrainConfig(lr=-1.0)
    Traceback (most recent call last):
    ...
    ValueError: lr=-1.0 is not allowed; the learning rate must be a finite number > 0
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from eoslab.core.data import _CIFAR, DATASET_NAMES
from eoslab.core.devices import DTYPES
from eoslab.core.losses import LOSS_NAMES
from eoslab.core.models import MODEL_NAMES
from eoslab.core.optim import OPTIMIZER_NAMES, SCHEDULE_NAMES, check_lr

__all__ = ["TrainConfig"]

# fields that change where a run executes but not what it computes
_NOT_IN_KEY = ("device", "record_every_seconds")


def _positive_int(name: str, value, allow_none: bool = False, minimum: int = 1):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name}={value!r} is not allowed; use an integer >= {minimum}{extra}")


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on.

    Defaults reproduce the edge-of-stability setting of Cohen et al. 2021 scaled to the
    offline ``digits`` data: fc-tanh (width 200, two hidden layers), MSE, full-batch GD.
    ``batch_size=None`` means full batch; ``sharpness_every=0`` disables the sharpness probe.
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
        if not (self.dataset in DATASET_NAMES or _CIFAR.match(str(self.dataset))):
            raise ValueError(f"dataset={self.dataset!r} is not allowed; allowed: "
                             f"{', '.join(DATASET_NAMES)}")
        _choice("model", self.model, MODEL_NAMES)
        _choice("loss", self.loss, LOSS_NAMES)
        _choice("optimizer", self.optimizer, OPTIMIZER_NAMES)
        _choice("schedule", self.schedule, SCHEDULE_NAMES)
        _choice("dtype", self.dtype, tuple(DTYPES))
        check_lr(self.lr)
        _positive_int("steps", self.steps)
        _positive_int("record_every", self.record_every)
        _positive_int("sharpness_every", self.sharpness_every, minimum=0)
        _positive_int("batch_size", self.batch_size, allow_none=True)
        _positive_int("chunk_size", self.chunk_size, allow_none=True)
        _positive_int("n_train", self.n_train, allow_none=True)
        if not (isinstance(self.divergence_factor, (int, float))
                and math.isfinite(self.divergence_factor) and self.divergence_factor > 1):
            raise ValueError(f"divergence_factor={self.divergence_factor!r} is not allowed; "
                             "use a finite number > 1")
        object.__setattr__(self, "betas", tuple(self.betas))

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
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; allowed: {sorted(known)}")
        return cls(**values)

    def key(self) -> str:
        """A stable 16-hex-digit hash of the fields that determine the result."""
        values = {k: v for k, v in self.to_dict().items() if k not in _NOT_IN_KEY}
        blob = json.dumps(values, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
