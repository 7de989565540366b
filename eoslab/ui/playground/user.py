"""A user's own module, tensors, loss and optimiser in the playground's views.

``Playground(model=net, data=(x, y), loss="mse", optimizer=opt)`` trains ``net`` with
:func:`eoslab.core.train.fit` (any ``nn.Module`` and any ``torch.optim`` optimiser), with
a :class:`~eoslab.curvature.sharpness.SharpnessProbe` (preconditioned sharpness for
Adam/AdamW/RMSprop). Each run starts from the module's and optimiser's state at the
moment the playground was built, so runs are comparable. These runs are not stored: the
store keys runs by a :class:`~eoslab.core.config.TrainConfig`, which cannot describe
someone else's module.

The threshold drawn is :func:`eoslab.curvature.sharpness.stability_threshold` of the
optimiser (GD, heavy ball, Nesterov, Adam/AdamW, RMSprop, and SAM's base optimiser);
for other optimisers only the sharpness is drawn.
"""

from __future__ import annotations

import copy

import torch

from eoslab.core.data import Dataset
from eoslab.curvature.sharpness import stability_threshold

__all__ = ["UserProblem", "user_dataset"]


def user_dataset(data) -> Dataset:
    """A :class:`Dataset` of ``(x, y)`` tensors (integer ``y``: class labels)."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2
            and all(torch.is_tensor(t) for t in data)):
        raise ValueError(f"data={type(data).__name__} is not allowed; give a pair (x, y) of "
                         "tensors with the same number of rows")
    x, y = data
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"data has {x.shape[0]} inputs and {y.shape[0]} targets; give the "
                         "same number (> 0) of each")
    classes = int(y.max()) + 1 if not y.is_floating_point() else 0
    empty_x, empty_y = x[:0], y[:0]
    return Dataset("user", x, y, empty_x, empty_y, classes, tuple(x.shape[1:]))


class UserProblem:
    """The module, data, loss and optimiser a user gave, with their starting states."""

    def __init__(self, model, data, loss, optimizer):
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model={type(model).__name__} is not allowed; give a "
                             "torch.nn.Module")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer={type(optimizer).__name__} is not allowed; give a "
                             "torch.optim.Optimizer over the model's parameters")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.data = user_dataset(data)
        self._model0 = copy.deepcopy(model.state_dict())
        self._opt0 = copy.deepcopy(optimizer.state_dict())
        try:
            stability_threshold(optimizer)
            self.has_threshold = True
        except ValueError:
            self.has_threshold = False

    def reset(self) -> None:
        """Back to the states the playground was built with."""
        self.model.load_state_dict(self._model0)
        self.optimizer.load_state_dict(copy.deepcopy(self._opt0))

    def adaptive(self) -> bool:
        base = getattr(self.optimizer, "base", self.optimizer)
        return isinstance(base, (torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop))

    def edge(self, row: dict) -> list[dict]:
        """Curvature and threshold rows of one history row (see the module docs)."""
        if row.get("sharpness") is None:
            return []
        key = "precond_sharpness" if self.adaptive() else "sharpness"
        curve = "preconditioned sharpness" if self.adaptive() else "sharpness"
        out = []
        if row.get(key) is not None:
            out.append({"run": "", "step": row["step"], "curve": curve, "value": row[key]})
        if self.has_threshold:
            out.append({"run": "", "step": row["step"], "curve": "threshold",
                        "value": stability_threshold(self.optimizer)})
        return out
