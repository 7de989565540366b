"""Keep freed heap memory inside a hot loop, so large temporaries are not page-faulted anew.

A batched evaluation on the CPU allocates and frees the same few multi-megabyte
activations on every batch.  glibc's ``malloc`` serves blocks above its mmap threshold
with fresh ``mmap`` pages and hands the top of the heap back to the kernel whenever more
than its trim threshold is free there, so each batch pays the kernel to fault in and zero
its temporaries again, at a cost that depends on whatever the process allocated before
(glibc raises the thresholds dynamically; figures in ``benchmarks/bench_plane.md``).

:func:`retained_heap` fixes, for the duration of a ``with`` block, the mmap threshold at
glibc's own upper limit (32 MiB: smaller blocks come from the heap) and the trim threshold
at 1 GiB (freed memory stays for the next batch).  On exit the trim threshold is set to
64 MiB, twice the mmap threshold, which is where glibc's dynamic rule settles, and
``malloc_trim(0)`` returns the free memory to the system.  Elsewhere (macOS, musl, no
``mallopt``) it does nothing.  PyTorch has no caching allocator for CPU tensors that
Python can switch on, which is why this goes through ``mallopt`` (``man 3 mallopt``).
The engines enter it through :func:`eoslab.speed.switch.accelerated`, so
``EOSLAB_SPEED=0`` leaves glibc's defaults alone.

Example:
    >>> with retained_heap():
    ...     pass
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import threading
from contextlib import contextmanager

__all__ = ["MMAP_THRESHOLD", "TRIM_AFTER", "TRIM_DURING", "retained_heap"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20
TRIM_DURING = 2**30
TRIM_AFTER = 2 * MMAP_THRESHOLD

_lock = threading.Lock()
_depth = 0


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _libc()


@contextmanager
def retained_heap():
    """Within the block, freed heap memory is kept for reuse (glibc only; nestable)."""
    global _depth
    with _lock:
        _depth += 1
        if _LIBC is not None and _depth == 1:
            _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            _LIBC.mallopt(_M_TRIM_THRESHOLD, TRIM_DURING)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _LIBC is not None and _depth == 0:
                _LIBC.mallopt(_M_TRIM_THRESHOLD, TRIM_AFTER)
                _LIBC.malloc_trim(0)
