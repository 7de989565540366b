"""Run small-model work on one CPU thread.

The chapter experiments train nets of a few thousand parameters; on a shared laptop or
Binder CPU, PyTorch's intra-op thread pool then costs more in synchronisation than it
gains (``benchmarks/README.md``).  :func:`single_thread` sets one thread for a block and
restores the previous count afterwards.  It is a speed layer: with the switch off
(``EOSLAB_SPEED=0``, :mod:`eoslab.speed.switch`) it leaves the thread count alone.

>>> import torch
>>> before = torch.get_num_threads()
>>> with single_thread():
...     torch.get_num_threads() == (1 if enabled() else before)
True
>>> torch.get_num_threads() == before
True
"""

from __future__ import annotations

import contextlib

import torch

from eoslab.speed.switch import enabled

__all__ = ["single_thread"]


@contextlib.contextmanager
def single_thread():
    """Context manager: ``torch.set_num_threads(1)`` inside, the old count restored after.

    A no-op with the speed switch off.
    """
    if not enabled():
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
