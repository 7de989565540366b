"""retained_heap keeps freed blocks in the heap inside the block and returns them after."""

import ctypes
import sys

import pytest
import torch

from eoslab import heap


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _free_in_heap() -> int:
    heap._LIBC.mallinfo2.restype = _Mallinfo2
    return heap._LIBC.mallinfo2().fordblks


def test_freed_temporaries_stay_in_the_heap_until_the_block_ends():
    if not sys.platform.startswith("linux"):   # no glibc: the block is a no-op
        assert heap._LIBC is None
        return
    assert heap._LIBC is not None
    size = 24 * 2**20
    with heap.retained_heap():
        block = torch.empty(size // 4)        # below the 32 MiB mmap threshold: heap
        block.fill_(1.0)
        del block
        kept = _free_in_heap()
    assert kept >= size                        # freed, but not given back
    assert _free_in_heap() < size              # malloc_trim returned it on exit


def test_nesting_and_errors_restore_the_depth():
    with heap.retained_heap():
        with heap.retained_heap():
            assert heap._depth == 2
        assert heap._depth == 1
    with pytest.raises(RuntimeError):
        with heap.retained_heap():
            raise RuntimeError("boom")
    assert heap._depth == 0
