"""Small checks shared by every validating entry point: numbers, integers, ranges.

Each raises ``ValueError`` naming the value and the allowed range, e.g.

    >>> check_int("steps", 0, 1, 10)
    Traceback (most recent call last):
    ...
    ValueError: steps=0 is not allowed; use an integer in [1, 10]
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = ["check_int", "check_number", "dtype_max", "finite", "interval", "is_integer",
           "is_number", "show"]


def show(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages about arbitrary input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_integer(value) -> bool:
    """An integer (Python or numpy) that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_number(value) -> bool:
    """A real number (Python or numpy) that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def finite(value) -> bool:
    """Whether ``value`` is a finite number (an int too large for a float is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def dtype_max(dtype) -> float:
    """The largest finite number of a floating dtype (``"float32"`` or a torch dtype)."""
    dtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    return float(torch.finfo(dtype).max)


def interval(low, high, low_open=False, high_open=False) -> str:
    """``[low, high]`` as text, with round brackets on open ends."""
    def num(v):
        return f"{v:g}" if isinstance(v, float) else str(v)

    return f"{'(' if low_open else '['}{num(low)}, {num(high)}{')' if high_open else ']'}"


def check_int(name: str, value, low: int, high: int, *, allow_none: bool = False,
              note: str = "") -> int | None:
    """``value`` as an ``int`` in ``[low, high]`` (or ``None`` when allowed), else ValueError."""
    if value is None and allow_none:
        return None
    if not is_integer(value) or not low <= value <= high:
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name}={show(value)} is not allowed; use an integer in "
                         f"{interval(low, high)}{extra}{note}")
    return int(value)


def check_number(name: str, value, low: float, high: float, *, low_open: bool = False,
                 high_open: bool = False, note: str = "") -> float:
    """``value`` as a finite ``float`` in the interval, else ValueError naming ``name``."""
    ok = is_number(value) and finite(value)
    number = float(value) if ok else math.nan
    if not (ok and (low < number if low_open else low <= number)
            and (number < high if high_open else number <= high)):
        raise ValueError(f"{name}={show(value)} is not allowed; use a finite number in "
                         f"{interval(low, high, low_open, high_open)}{note}")
    return number


