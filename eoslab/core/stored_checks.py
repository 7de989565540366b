"""What a stored run or checkpoint must look like before it is trusted.

A file can pass its checksum and still be wrong for the run that reads it: another
configuration's result, a history out of order, a checkpoint whose step lies outside
``[0, steps]`` or whose tensors do not fit the model. Each check returns ``None`` when the
content is usable and otherwise a sentence saying what is wrong, which the store puts in
its warning before it moves the file aside.

Example:
    >>> checkpoint_problem({"step": -5, "history": [], "model": {}, "optimizer": {}})
    'its step -5 is not an integer >= 0'
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["checkpoint_problem", "run_problem"]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _history_problem(history, below: int | None) -> str | None:
    if not isinstance(history, list):
        return f"history is a {type(history).__name__}, not a list of rows"
    last = -1
    for i, row in enumerate(history):
        if not isinstance(row, dict) or not _is_int(row.get("step")):
            return f"history row {i} is not a dict with an integer 'step'"
        if row["step"] <= last or (below is not None and row["step"] >= below):
            return f"history row {i} has step {row['step']} out of order"
        last = row["step"]
    if history and not _is_number(history[0].get("loss")):
        return "the first history row has no numeric 'loss'"
    return None


def run_problem(blob, config) -> str | None:
    """Why ``blob`` is not a stored run of ``config``, or ``None`` when it is one."""
    if not isinstance(blob, dict) or not isinstance(blob.get("run"), dict):
        return f"not a stored run (a {type(blob).__name__} without a 'run' dict)"
    if isinstance(blob.get("config"), dict):
        from eoslab.core.config import TrainConfig

        try:
            same = TrainConfig.from_dict(blob["config"]).key() == config.key()
        except (ValueError, TypeError):
            same = False
        if not same:
            return "it holds the run of another config"
    run = blob["run"]
    problem = _history_problem(run.get("history"), config.steps + 1)
    if problem:
        return problem
    if run.get("status") not in ("finished", "diverged"):
        return f"status {run.get('status')!r} is not 'finished' or 'diverged'"
    done = run.get("steps_done")
    if not _is_int(done) or not 0 <= done <= config.steps:
        return f"steps_done {done!r} is not an integer in [0, {config.steps}]"
    at = run.get("diverged_at")
    if at is not None and not (isinstance(at, list) and len(at) == 2 and _is_int(at[0])
                               and _is_number(at[1])):
        return f"diverged_at {at!r} is not [step, loss]"
    if not _is_number(run.get("seconds", 0.0)):
        return "seconds is not a number"
    return None


def _tensors_problem(saved, expected: Mapping, what: str) -> str | None:
    if not isinstance(saved, Mapping) or set(saved) != set(expected):
        return f"its {what} has other entries than the model's"
    for name, ref in expected.items():
        t = saved[name]
        if not torch.is_tensor(t) or t.shape != ref.shape or t.dtype != ref.dtype:
            return (f"its {what} entry {name!r} is not a {ref.dtype} tensor of shape "
                    f"{tuple(ref.shape)}")
    return None


def _optimizer_problem(saved, optimizer) -> str | None:
    if (not isinstance(saved, dict) or not isinstance(saved.get("state"), dict)
            or not isinstance(saved.get("param_groups"), list)):
        return "its optimizer state is not an optimizer state_dict"
    groups = optimizer.param_groups
    if len(saved["param_groups"]) != len(groups):
        return "its optimizer has another number of parameter groups"
    shapes = {}
    for group, ours in zip(saved["param_groups"], groups):
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or len(ids) != len(ours["params"]):
            return "its optimizer has another number of parameters"
        shapes.update({i: p.shape for i, p in zip(ids, ours["params"])})
    for i, values in saved["state"].items():
        if i not in shapes or not isinstance(values, dict):
            return f"its optimizer state names an unknown parameter {i!r}"
        for name, value in values.items():
            if torch.is_tensor(value) and value.dim() > 0 and value.shape != shapes[i]:
                return f"its optimizer state {name!r} of parameter {i} has the wrong shape"
    return None


def _batches_problem(saved) -> str | None:
    if saved is None:
        return None
    if (not isinstance(saved, dict) or not torch.is_tensor(saved.get("rng"))
            or saved["rng"].dtype != torch.uint8
            or saved["rng"].shape != torch.Generator().get_state().shape
            or not torch.is_tensor(saved.get("order")) or not _is_int(saved.get("pos"))
            or saved["pos"] < 0):
        return "its minibatch state is malformed"
    return None


def checkpoint_problem(state, max_step: int | None = None, model: nn.Module | None = None,
                       optimizer: torch.optim.Optimizer | None = None) -> str | None:
    """Why ``state`` cannot resume a run, or ``None`` when it can.

    A training checkpoint (see :func:`eoslab.core.train.fit`) is a dict with ``model`` and
    ``optimizer`` state dicts, ``history`` (rows with increasing integer ``step`` below
    ``step``), ``step`` in ``[0, max_step]``, and optional ``scheduler`` and ``batches``.
    Given ``model`` / ``optimizer``, their parameter names, shapes and dtypes must match.
    """
    if not isinstance(state, dict):
        return f"not a training state (a {type(state).__name__})"
    missing = [k for k in ("model", "optimizer", "history", "step") if k not in state]
    if missing:
        return f"not a training state (missing {', '.join(missing)})"
    step = state["step"]
    if not _is_int(step) or step < 0:
        return f"its step {step!r} is not an integer >= 0"
    if max_step is not None and step > max_step:
        return f"its step {step} is beyond the run's {max_step} steps"
    problem = _history_problem(state["history"], step)
    if problem is None and not isinstance(state["model"], Mapping):
        problem = "its model state is not a state_dict"
    if problem is None and model is not None:
        problem = _tensors_problem(state["model"], model.state_dict(), "model state")
    if problem is None and optimizer is not None:
        problem = _optimizer_problem(state["optimizer"], optimizer)
    if problem is None and not isinstance(state.get("scheduler"), (dict, type(None))):
        problem = "its scheduler state is not a dict"
    return problem or _batches_problem(state.get("batches"))
