"""retained_heap keeps freed blocks in the heap inside the block and returns them after."""

import subprocess
import sys

import pytest

from eoslab.speed import heap

_PROBE = """
import os, torch
from eoslab.speed import heap
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
size = 24 * 2**20
before = rss()
with heap.retained_heap():
    block = torch.empty(size // 4)   # below the 32 MiB mmap threshold: from the heap
    block.fill_(1.0)
    del block
    inside = rss()
after = rss()
print(heap._LIBC is not None, (inside - before) / size, (inside - after) / size)
"""


def test_freed_temporaries_stay_in_the_heap_until_the_block_ends():
    """In a fresh process (a clean heap): a freed 24 MiB block stays resident inside the
    block and is given back to the system when the block ends."""
    if not sys.platform.startswith("linux"):   # no glibc: the block is a no-op
        assert heap._LIBC is None
        return
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0] == "True"
    kept, returned = float(out[1]), float(out[2])
    assert kept > 0.9, f"only {kept:.2f} of the freed block stayed resident"
    assert returned > 0.9, f"only {returned:.2f} of it was given back on exit"


def test_nesting_and_errors_restore_the_depth():
    with heap.retained_heap():
        with heap.retained_heap():
            assert heap._depth == 2
        assert heap._depth == 1
    with pytest.raises(RuntimeError), heap.retained_heap():
        raise RuntimeError("boom")
    assert heap._depth == 0
