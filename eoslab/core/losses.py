"""Losses with one pinned convention each.

Every loss here is a *mean over examples* of a per-example loss, so a full-batch
value can be accumulated exactly over chunks of the data by weighting each chunk's
mean by ``len(chunk) / n``.  Outer transforms that do not decompose over examples
(the square root of a loss, used by the normalised-GD chapter) are applied *after*
the full-batch mean: see :class:`Loss.outer`.

The MSE convention is the one of Cohen et al., "Gradient Descent on Neural Networks
Typically Occurs at the Edge of Stability", ICLR 2021 (arXiv 2103.00065):

.. math::

    L(\\theta) = \\frac{1}{n} \\sum_{i=1}^{n} \\tfrac12 \\lVert f_\\theta(x_i) - y_i \\rVert_2^2,

a half *sum* over output coordinates and a *mean* over examples.  With this convention
the sharpness values (top Hessian eigenvalue) match the paper's, e.g. an initial
sharpness of a few units for fc-tanh on small image data.

Example:
    >>> import torch
    >>> out = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    >>> tgt = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    >>> float(get_loss("mse")(out, tgt))   # (0.5*1 + 0.5*4) / 2
    1.25
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "LOSS_NAMES",
    "Loss",
    "accuracy",
    "cross_entropy",
    "cross_entropy_per_copy",
    "get_loss",
    "mse",
    "mse_per_copy",
]

Tensor = torch.Tensor


def mse(output: Tensor, target: Tensor) -> Tensor:
    """Cohen et al. MSE: half the squared error summed over outputs, averaged over examples.

    A 1-D output (one scalar per example) is treated as a single output coordinate.
    """
    if output.shape != target.shape:
        raise ValueError(
            f"mse: output shape {tuple(output.shape)} does not match target shape "
            f"{tuple(target.shape)}; use one-hot targets for classification with MSE"
        )
    diff = (output - target).reshape(output.shape[0], -1) if output.dim() > 0 else output - target
    return 0.5 * diff.pow(2).sum(dim=-1).mean()


def cross_entropy(output: Tensor, target: Tensor) -> Tensor:
    """Softmax cross-entropy averaged over examples.

    ``target`` may hold class indices (shape ``(n,)``) or one-hot / soft labels
    (same shape as ``output``).
    """
    if target.dim() == output.dim():
        return -(target * F.log_softmax(output, dim=-1)).sum(dim=-1).mean()
    return F.cross_entropy(output, target)


def mse_per_copy(outputs: Tensor, target: Tensor) -> Tensor:
    """:func:`mse` of each of ``C`` stacked outputs ``(C, n, ...)`` against one ``target``.

    Entry ``c`` is ``mse(outputs[c], target)``, computed as one reduction for all copies.
    """
    if outputs.shape[1:] != target.shape or target.dim() == 0:
        raise ValueError(
            f"mse: stacked output shape {tuple(outputs.shape)} is not (copies,) + target shape "
            f"{tuple(target.shape)}; use one-hot targets for classification with MSE")
    diff = (outputs - target).reshape(outputs.shape[0], outputs.shape[1], -1)
    return 0.5 * diff.pow(2).sum(dim=-1).mean(dim=-1)


def cross_entropy_per_copy(outputs: Tensor, target: Tensor) -> Tensor:
    """:func:`cross_entropy` of each of ``C`` stacked outputs ``(C, n, k)`` against ``target``.

    ``target`` holds class indices ``(n,)`` or one-hot / soft labels ``(n, k)``.
    """
    if outputs.dim() != 3 or outputs.shape[1] != target.shape[0] or not (
            target.shape == outputs.shape[1:] or target.dim() == 1):
        raise ValueError(
            f"cross-entropy: stacked outputs of shape {tuple(outputs.shape)} (copies, n, "
            f"classes) do not fit a target of shape {tuple(target.shape)} ((n,) class indices "
            "or (n, classes) labels)")
    logp = F.log_softmax(outputs, dim=-1)
    if target.dim() == 2:
        return -(target * logp).sum(dim=-1).mean(dim=-1)
    index = target.expand(outputs.shape[0], -1).unsqueeze(-1)
    return -logp.gather(-1, index).squeeze(-1).mean(dim=-1)


def accuracy(output: Tensor, target: Tensor) -> Tensor:
    """Fraction of examples whose arg-max output equals the label (index or one-hot)."""
    labels = target.argmax(dim=-1) if target.dim() == output.dim() else target
    return (output.argmax(dim=-1) == labels).to(output.dtype).mean()


@dataclass(frozen=True)
class Loss:
    """A per-example-mean loss, optionally followed by an outer transform.

    Attributes:
        name: registry name, e.g. ``"mse"`` or ``"sqrt-mse"``.
        per_example_mean: ``(output, target) -> scalar`` mean over the examples given.
        outer: applied to the *full-batch* mean, e.g. ``torch.sqrt``; ``None`` for identity.
        per_copy_mean: ``(outputs (C, n, ...), target) -> (C,)``, ``per_example_mean`` of
            every copy's outputs in one batched reduction; ``None`` maps
            ``per_example_mean`` over copies with ``torch.func.vmap``.
    """

    name: str
    per_example_mean: Callable[[Tensor, Tensor], Tensor]
    outer: Callable[[Tensor], Tensor] | None = None
    per_copy_mean: Callable[[Tensor, Tensor], Tensor] | None = None

    def per_copy(self, outputs: Tensor, target: Tensor) -> Tensor:
        """``per_example_mean(outputs[c], target)`` for every copy ``c``, shape ``(C,)``.

        A sweep's ``C`` stacked models share the data; the built-in losses reduce all
        copies at once, since a ``vmap`` of the per-copy call costs more per call than the
        reduction itself.  Other losses fall back to that ``vmap``.
        """
        if self.per_copy_mean is not None:
            return self.per_copy_mean(outputs, target)
        return torch.func.vmap(self.per_example_mean, (0, None))(outputs, target)

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        """The loss of one batch (outer transform included)."""
        value = self.per_example_mean(output, target)
        return self.outer(value) if self.outer is not None else value

    def finish(self, mean_value: Tensor) -> Tensor:
        """Apply the outer transform to an accumulated full-batch mean."""
        return self.outer(mean_value) if self.outer is not None else mean_value


_BASE = {"mse": mse, "ce": cross_entropy, "cross-entropy": cross_entropy}
_PER_COPY = {"mse": mse_per_copy, "ce": cross_entropy_per_copy,
             "cross-entropy": cross_entropy_per_copy}
LOSS_NAMES = ("mse", "ce", "cross-entropy", "sqrt-mse", "sqrt-ce")


def get_loss(name: str | Loss) -> Loss:
    """Return the :class:`Loss` called ``name``.

    ``sqrt-<base>`` is :math:`\\sqrt{L_{base}}`, the loss whose GD is studied by Arora, Li
    and Panigrahi (ICML 2022, arXiv 2205.09745).

    Raises:
        ValueError: for an unknown name, listing the allowed ones.
    """
    if isinstance(name, Loss):
        return name
    if not isinstance(name, str) or name not in LOSS_NAMES:
        raise ValueError(f"unknown loss {name!r}; allowed: {', '.join(LOSS_NAMES)}")
    if name.startswith("sqrt-"):
        return Loss(name, _BASE[name[5:]], torch.sqrt, _PER_COPY[name[5:]])
    return Loss(name, _BASE[name], per_copy_mean=_PER_COPY[name])
