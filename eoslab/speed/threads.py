"""Run small-model work on one CPU thread.

The chapter experiments train nets of a few thousand parameters; on a shared laptop or
Binder CPU, PyTorch's intra-op thread pool then costs more in synchronisation than it
gains (measured here: a 16-wide MLP step went from ~2 ms on one thread to ~90 ms with two
threads on a busy two-core machine).  :func:`single_thread` sets one thread for a block
and restores the previous count afterwards.

>>> import torch
>>> before = torch.get_num_threads()
>>> with single_thread():
...     torch.get_num_threads()
1
>>> torch.get_num_threads() == before
True
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["single_thread"]


@contextlib.contextmanager
def single_thread():
    """Context manager: ``torch.set_num_threads(1)`` inside, the old count restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
