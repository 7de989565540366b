"""Parameter dicts: the one ``Params`` type and its flat-vector view.

Probes, landscapes and optimisers in eoslab treat a model's weights as a dict of named
tensors, :math:`\\theta = \\{\\text{name}: W\\}`, and call the model through
``torch.func.functional_call``. Linear algebra on them (Lanczos, projections, planes)
works on the flat vector :math:`\\operatorname{vec}(\\theta) \\in \\mathbb R^P`, the entries
in the dict's key order; :func:`flatten` and :func:`unflatten` are inverse to each other.

Example:
    >>> import torch
    >>> theta = {"w": torch.ones(2, 3), "b": torch.zeros(3)}
    >>> v = flatten(theta)
    >>> v.shape
    torch.Size([9])
    >>> unflatten(v, theta)["w"].shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import torch

__all__ = ["Params", "flatten", "unflatten"]

Params = dict[str, torch.Tensor]


def flatten(tensors: Params | list) -> torch.Tensor:
    """Concatenate tensors (a dict's values in key order, or a list) into one flat vector."""
    values = tensors.values() if isinstance(tensors, dict) else tensors
    return torch.cat([t.reshape(-1) for t in values])


def unflatten(vector: torch.Tensor, like: Params) -> Params:
    """Split a flat vector, or a batch ``(..., P)`` of them, into tensors shaped as ``like``.

    Raises:
        ValueError: when the vector's last dimension is not the parameters' total size.
    """
    total = sum(ref.numel() for ref in like.values())
    if vector.dim() == 0 or vector.shape[-1] != total:
        size = vector.shape[-1] if vector.dim() else 0
        raise ValueError(f"vector has {size} entries but the parameters have {total}")
    out, start = {}, 0
    lead = vector.shape[:-1]
    for name, ref in like.items():
        stop = start + ref.numel()
        out[name] = vector[..., start:stop].reshape(*lead, *ref.shape)
        start = stop
    return out
