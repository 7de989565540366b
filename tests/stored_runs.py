"""Comparing runs and watching stored files in tests (tests/ is on sys.path via its conftest)."""

import math

REL = 1e-5


def assert_equal_runs(got, ref, rel=REL):
    """Same status, steps and history, every recorded number within ``rel`` (times aside)."""
    assert (got.status, got.steps_done, got.diverged_at is None) == (
        ref.status, ref.steps_done, ref.diverged_at is None)
    assert [r["step"] for r in got.history] == [r["step"] for r in ref.history]
    for a, b in zip(got.history, ref.history):
        assert set(a) == set(b)
        for key in set(a) - {"time", "hvps"}:
            assert math.isclose(a[key], b[key], rel_tol=rel, abs_tol=1e-9), (a["step"], key)


def stored_files(store, configs):
    """(inode, mtime) of each stored result: a rewrite changes the inode (os.replace)."""
    out = {}
    for c in configs:
        path = store.path("runs", c.key()) / "result.json"
        if path.exists():
            st = path.stat()
            out[c.key()] = (st.st_ino, st.st_mtime_ns)
    return out
