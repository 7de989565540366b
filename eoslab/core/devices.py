"""Device and dtype resolution: one place that turns user strings into torch objects."""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "resolve_dtype", "DTYPES"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def resolve_device(device=None) -> torch.device:
    """``None``/``"auto"`` picks CUDA when available, else CPU; anything else is validated.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a device; use 'auto', 'cpu' or 'cuda'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} asked for CUDA but no CUDA device is available; "
                         "use 'auto' or 'cpu'")
    return dev


def resolve_dtype(dtype="float32") -> torch.dtype:
    """``"float32"``/``"float64"`` (or the torch dtypes) to a torch floating dtype.

    >>> resolve_dtype("float64")
    torch.float64
    """
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f"dtype={dtype!r} is not supported; allowed: {', '.join(DTYPES)}")
