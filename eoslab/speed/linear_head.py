"""A net's first affine layer, evaluated once per direction instead of once per point.

For a model :math:`f = g \\circ h` whose first parametrised module :math:`h` is linear in
its parameters (``nn.Linear``, ``nn.Conv1d/2d/3d``: :math:`h_\\theta(x) = x \\ast W + b` is
linear in :math:`\\theta = (W, b)` jointly) and whose earlier modules hold neither
parameters nor buffers, every point :math:`\\theta(c) = \\theta_0 + \\sum_k c_k d_k` of a
line or plane (:mod:`eoslab.geometry.landscape`) has

.. math:: h_{\\theta(c)}(x) = h_{\\theta_0}(x) + \\sum_{k=1}^{K} c_k\\, h_{d_k}(x).

So the :math:`K+1` responses :math:`H_0 = h_{\\theta_0}(x)`, :math:`H_k = h_{d_k}(x)` are
computed once per data chunk, and a point's first layer costs a :math:`(K+1)`-term
combination instead of a product with the data.  Only the rest of the net, :math:`g`, is
evaluated per point.  Li et al. (2018) evaluate every point from the input; on the
digits default (fc-tanh, width 200) the first layer is about a quarter of a point's
multiply-adds.

Applies to ``nn.Sequential`` models (the layout of every model in :mod:`eoslab.core.models`)
whose first parametrised module is one of those types and whose parameters are all
being varied; anything else returns ``None`` from :func:`split_linear_head` and the
caller evaluates the whole model per point.  The landscape consults it through
:func:`eoslab.speed.switch.split_linear_head`, which returns ``None`` with the switch off.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from eoslab.curvature.objective import Objective
    >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    >>> obj = Objective(net, "mse", torch.randn(5, 3), torch.randn(5, 1))
    >>> split = split_linear_head(obj)
    >>> split.head_names, [n for n, _ in split.tail.named_parameters()]
    (('1.weight', '1.bias'), ['3.weight', '3.bias'])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

__all__ = ["AFFINE_MODULES", "LinearHeadSplit", "split_linear_head"]

#: module types whose output is linear in (weight, bias) jointly
AFFINE_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

Params = dict


@dataclass(frozen=True)
class LinearHeadSplit:
    """``model == tail(head(x))``; ``head`` ends in the affine module named ``head_names``."""

    head: nn.Sequential
    tail: nn.Sequential
    head_names: tuple[str, ...]

    def responses(self, base: Params, directions: Sequence[Params], x: torch.Tensor
                  ) -> torch.Tensor:
        """:math:`[H_0, H_1, ..., H_K]` stacked: shape ``(K + 1, *head(x).shape)``."""
        sets = [base, *directions]
        return torch.stack([functional_call(self.head, {n: p[n] for n in self.head_names},
                                            (x,)) for p in sets])

    @staticmethod
    def combine(responses: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """:math:`H_0 + \\sum_k c_{pk} H_k` for each row ``c_p`` of ``coords`` ``(P, K)``."""
        weights = torch.cat([torch.ones_like(coords[:, :1]), coords], dim=1).to(responses)
        flat = weights @ responses.reshape(responses.shape[0], -1)
        return flat.reshape(coords.shape[0], *responses.shape[1:])

    def tail_params(self, params: Params) -> Params:
        """The entries of ``params`` that belong to the tail."""
        return {n: v for n, v in params.items() if n not in self.head_names}


def split_linear_head(objective) -> LinearHeadSplit | None:
    """Split ``objective.model`` at its first parametrised module, if the identity applies.

    Returns ``None`` (evaluate the whole model per point) unless the model is a plain
    ``nn.Sequential`` evaluated in eval mode, every module before the first parametrised
    one has no parameters or buffers, that module is one of :data:`AFFINE_MODULES`, and
    its parameters are among those the points vary (``objective.param_names``).
    """
    model = objective.model
    if type(model) is not nn.Sequential or objective.train_mode:
        return None
    varied = set(objective.param_names)
    for index, (key, module) in enumerate(model.named_children()):
        holds = any(True for _ in module.parameters()) or any(True for _ in module.buffers())
        if not holds:
            continue
        if type(module) not in AFFINE_MODULES:
            return None
        names = tuple(f"{key}.{n}" for n, _ in module.named_parameters())
        if not set(names) <= varied:
            return None
        return LinearHeadSplit(model[:index + 1], model[index + 1:], names)
    return None
