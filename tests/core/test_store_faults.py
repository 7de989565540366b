"""Store faults: corrupt, truncated, edited, malicious, unwritable and full stores.

Every bad file must be reported with its path, moved aside and recomputed (never raise on
every rerun, never be trusted); an unwritable store must fail before training; a result
the store cannot take must be kept elsewhere.
"""

import errno
import io
import json
import os
import re
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eoslab.core import store as store_module
from eoslab.core import store_files
from eoslab.core.config import TrainConfig
from eoslab.core.experiment import run
from eoslab.core.store import Checkpointer, RunStore, StoreError, StoreWarning

SMALL = TrainConfig(n_train=64, width=8, steps=20, record_every=5, lr=0.1)


@pytest.fixture(scope="module")
def reference():
    """The uninterrupted run of SMALL, without a store."""
    return run(SMALL, store=False)


def _result(store, config=SMALL) -> Path:
    return store.path("runs", config.key()) / "result.json"


def _moved_aside(file: Path) -> list[Path]:
    return sorted(file.parent.glob(f"{file.name}.corrupt-*"))


def _quiet_rerun(store, config=SMALL, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", StoreWarning)
        return run(config, store=store, **kwargs)


def _recovers(store, file, reference, **kwargs):
    """A rerun warns naming ``file``, moves it aside, trains afresh; the next rerun reuses it."""
    with pytest.warns(StoreWarning, match=re.escape(str(file))):
        again = run(SMALL, store=store, **kwargs)
    assert not again.extra.get("from_store")
    assert again.column("loss") == reference.column("loss")
    assert _moved_aside(file), "the bad file was not moved aside"
    third = _quiet_rerun(store, **kwargs)
    assert third.extra.get("from_store") and third.column("loss") == reference.column("loss")


# -- result.json -------------------------------------------------------------------------
def _legacy(text):  # the format before checksums: the blob itself
    return json.dumps(json.loads(text)["data"])


RESULT_FAULTS = {
    "truncated": lambda text: text[: len(text) // 2],
    "empty": lambda text: "",
    "garbage": b"\xff\xfe\x00garbage\x00".decode("latin-1"),
    "{}": lambda text: "{}",
    "[]": lambda text: "[]",
    "null": lambda text: "null",
    "wrong types": lambda text: '{"config": 1, "run": {"history": 5, "status": 3}}',
    "edited value": lambda text: text.replace('"finished"', '"diverged"'),
    "edited loss": lambda text: re.sub(r'"loss": [0-9.e-]+', '"loss": 0.0', text, count=1),
    "legacy, no checksum": _legacy,
}


@pytest.mark.parametrize("fault", list(RESULT_FAULTS))
def test_a_bad_result_json_is_reported_moved_aside_and_recomputed(tmp_path, reference, fault):
    store = RunStore(tmp_path)
    run(SMALL, store=store)
    file = _result(store)
    text = file.read_text()
    mutate = RESULT_FAULTS[fault]
    if isinstance(mutate, str):
        file.write_bytes(mutate.encode("latin-1"))
    else:
        file.write_text(mutate(text))
    _recovers(store, file, reference)


def test_a_directory_in_place_of_result_json_is_moved_aside(tmp_path, reference):
    store = RunStore(tmp_path)
    file = _result(store)
    file.mkdir(parents=True)
    _recovers(store, file, reference)


def _forge(store, config, blob):
    """A well-checksummed file holding ``blob`` where ``config``'s run belongs."""
    store.save_json("runs", config.key(), blob)
    return _result(store, config)


def _good_blob(store, config=SMALL):
    return json.loads(_result(store, config).read_text())["data"]


@pytest.mark.parametrize("edit", [
    lambda b: {},
    lambda b: [],
    lambda b: {"config": b["config"], "run": []},
    lambda b: {**b, "run": {**b["run"], "history": 5}},
    lambda b: {**b, "run": {**b["run"], "history": [1, 2]}},
    lambda b: {**b, "run": {**b["run"], "history": b["run"]["history"][::-1]}},
    lambda b: {**b, "run": {**b["run"], "status": "stopped"}},
    lambda b: {**b, "run": {**b["run"], "steps_done": 10**6}},
    lambda b: {**b, "run": {**b["run"], "steps_done": "20"}},
    lambda b: {**b, "run": {**b["run"], "diverged_at": "soon"}},
    lambda b: {**b, "run": {**b["run"], "seconds": None}},
    lambda b: {**b, "config": {**b["config"], "lr": 0.2}},  # another config's run
    lambda b: {**b, "config": {**b["config"], "lr": "fast"}},
], ids=["{}", "[]", "run-list", "history-int", "rows-int", "rows-reversed", "stopped",
        "steps-done-huge", "steps-done-str", "diverged-at-str", "seconds-none", "other-config",
        "config-bad"])
def test_a_checksummed_but_malformed_run_is_moved_aside(tmp_path, edit):
    store = RunStore(tmp_path)
    run(SMALL, store=store)
    file = _forge(store, SMALL, edit(_good_blob(store)))
    with pytest.warns(StoreWarning, match=re.escape(str(file))):
        assert store.load_run(SMALL) is None
    assert _moved_aside(file) and not file.exists()


def test_a_bad_cached_result_is_computed_again(tmp_path):
    store = RunStore(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return {"loss": [1.0, 2.0]}

    parts = {"seed": 0}
    assert store.cached("slices", parts, compute) == {"loss": [1.0, 2.0]}
    file = store.path("slices", store_module.result_key(**parts)) / "result.json"
    file.write_text(file.read_text().replace("2.0", "3.0"))
    with pytest.warns(StoreWarning, match="checksum does not match"):
        assert store.cached("slices", parts, compute) == {"loss": [1.0, 2.0]}
    assert len(calls) == 2 and store.cached("slices", parts, compute) == {"loss": [1.0, 2.0]}


def test_two_corruptions_in_one_second_keep_both_copies(tmp_path):
    store = RunStore(tmp_path)
    file = store.path("slices", "k") / "result.json"
    for text in ("first", "second"):
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        with pytest.warns(StoreWarning):
            assert store.load_json("slices", "k") is None
    assert sorted(p.read_text() for p in _moved_aside(file)) == ["first", "second"]


def test_a_file_replaced_by_a_writer_meanwhile_is_not_moved(tmp_path):
    store = RunStore(tmp_path)
    store.save_json("slices", "k", {"a": 1})
    file = store.path("slices", "k") / "result.json"
    stale = os.stat(file)
    store.save_json("slices", "k", {"a": 2})  # a new inode, as os.replace makes
    assert store_files.move_aside(file, "test", stale) is False
    assert store.load_json("slices", "k") == {"a": 2} and not _moved_aside(file)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 400), flips=st.lists(st.tuples(st.integers(0, 400),
                                                         st.integers(0, 255)), max_size=3))
def test_any_damage_to_result_json_returns_the_truth_or_nothing(tmp_path_factory, cut, flips):
    blob = {"loss": [1.5, 0.25, float("inf")], "status": "finished", "n": 3,
            "label": "quick run", "nested": {"a": [True, None, -0.0]}}
    store = RunStore(tmp_path_factory.mktemp("s"))
    store.save_json("slices", "k", blob)
    file = store.path("slices", "k") / "result.json"
    data = bytearray(file.read_bytes())
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    file.write_bytes(bytes(data[:cut] if cut < len(data) else data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        back = store.load_json("slices", "k")
    assert back is None or json.dumps(back) == json.dumps(blob)
    assert (back is None) == (not file.exists())


# -- checkpoints -------------------------------------------------------------------------
def _interrupted(store, every=5, at=10):
    """Leave a checkpoint of SMALL at step ``at`` (the run is stopped there)."""
    stop = threading.Event()
    run(SMALL, store=store, checkpoint_every=every, stop=stop,
        callbacks=[lambda r: stop.set() if r["step"] == at else None])
    checkpoint = store.checkpointer("runs", SMALL.key(), every)
    assert store.load_run(SMALL) is None and checkpoint.load()["step"] == at
    return checkpoint


def _edit_state(checkpoint, edit):
    state = checkpoint.load()
    edit(state)
    checkpoint.save(state)


def _set(key, value):
    return lambda s: s.__setitem__(key, value)


def _resize_weight(s):
    name = next(iter(s["model"]))
    s["model"][name] = torch.zeros(3, 3)


def _resize_momentum(s):
    s["optimizer"]["state"] = {0: {"momentum_buffer": torch.zeros(2, 2)}}


CHECKPOINT_FAULTS = {
    "truncated": lambda c: c.path.write_bytes(c.path.read_bytes()[:-100]),
    "empty": lambda c: c.path.write_bytes(b""),
    "garbage": lambda c: c.path.write_bytes(os.urandom(2048)),
    "legacy torch.save": lambda c: torch.save(c.load(), c.path),
    "flipped byte": lambda c: c.path.write_bytes(
        c.path.read_bytes()[:-50] + b"\x00" + c.path.read_bytes()[-49:]),
    "step -5": lambda c: _edit_state(c, _set("step", -5)),
    "step beyond steps": lambda c: _edit_state(c, _set("step", SMALL.steps + 5)),
    "step a string": lambda c: _edit_state(c, _set("step", "10")),
    "not a dict": lambda c: c.save([torch.zeros(3)]),
    "no model": lambda c: _edit_state(c, lambda s: s.pop("model")),
    "history out of order": lambda c: _edit_state(c, lambda s: s["history"].reverse()),
    "history beyond step": lambda c: _edit_state(c, _set("step", 5)),
    "wrong weight shape": lambda c: _edit_state(c, _resize_weight),
    "wrong momentum shape": lambda c: _edit_state(c, _resize_momentum),
}


@pytest.mark.parametrize("fault", list(CHECKPOINT_FAULTS))
def test_a_bad_checkpoint_is_moved_aside_and_the_run_starts_afresh(tmp_path, reference, fault):
    store = RunStore(tmp_path)
    checkpoint = _interrupted(store)
    CHECKPOINT_FAULTS[fault](checkpoint)
    _recovers(store, checkpoint.path, reference, checkpoint_every=5)
    assert not checkpoint.path.exists()


def test_a_checkpoint_at_the_last_step_is_accepted(tmp_path):
    store = RunStore(tmp_path)
    checkpoint = _interrupted(store, every=5, at=15)
    state = checkpoint.load(max_step=SMALL.steps)
    assert state is not None and state["step"] == 15
    assert store_module.checkpoint_problem({**state, "step": SMALL.steps}, SMALL.steps) is None


def test_a_checkpoint_that_cannot_be_written_does_not_stop_training(tmp_path, monkeypatch,
                                                                     reference):
    real = store_module.atomic_write_bytes

    def no_room_for_checkpoints(path, data):
        if Path(path).name == "checkpoint.pt":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(store_module, "atomic_write_bytes", no_room_for_checkpoints)
    store = RunStore(tmp_path)
    with pytest.warns(StoreWarning, match="checkpoint.pt could not be written") as record:
        result = run(SMALL, store=store, checkpoint_every=5)
    assert len(record) == 1  # one warning, not one per checkpoint
    assert result.column("loss") == reference.column("loss")
    assert store.load_run(SMALL).column("loss") == reference.column("loss")


# -- malicious pickles -------------------------------------------------------------------
class _Evil:
    """Unpickling this creates ``marker`` (any code could run in its place)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_bytes(marker) -> bytes:
    buffer = io.BytesIO()
    torch.save({"model": _Evil(marker), "step": 0}, buffer)
    return buffer.getvalue()


def test_the_crafted_pickle_does_run_code_when_trusted(tmp_path):
    marker = tmp_path / "marker"
    torch.load(io.BytesIO(_evil_bytes(marker)), weights_only=False)
    assert marker.exists()  # so its absence below means the store refused to run it


@pytest.mark.parametrize("forge_checksum", [False, True], ids=["plain", "checksummed"])
def test_a_malicious_checkpoint_never_runs_and_the_run_recovers(tmp_path, reference,
                                                                forge_checksum):
    store = RunStore(tmp_path / "store")
    marker = tmp_path / "marker"
    checkpoint = store.checkpointer("runs", SMALL.key(), 5)
    checkpoint.path.parent.mkdir(parents=True)
    payload = _evil_bytes(marker)
    if forge_checksum:  # the checksum passes: only weights_only=True stands in the way
        import hashlib

        payload = (store_files._TORCH_MAGIC + hashlib.sha256(payload).hexdigest().encode()
                   + b"\n" + payload)
    checkpoint.path.write_bytes(payload)
    _recovers(store, checkpoint.path, reference, checkpoint_every=5)
    assert not marker.exists()


def test_malicious_tensors_never_run(tmp_path):
    import hashlib

    store = RunStore(tmp_path / "store")
    marker = tmp_path / "marker"
    file = store.path("slices", "k") / "tensors.pt"
    file.parent.mkdir(parents=True)
    payload = _evil_bytes(marker)
    file.write_bytes(store_files._TORCH_MAGIC + hashlib.sha256(payload).hexdigest().encode()
                     + b"\n" + payload)
    with pytest.warns(StoreWarning, match=re.escape(str(file)) + ".*weights_only=True"):
        assert store.load_tensors("slices", "k") is None
    assert not marker.exists() and _moved_aside(file)


def test_tensors_without_checksum_are_not_loaded(tmp_path):
    store = RunStore(tmp_path)
    file = store.path("slices", "k") / "tensors.pt"
    file.parent.mkdir(parents=True)
    torch.save({"grid": torch.zeros(2)}, file)
    with pytest.warns(StoreWarning, match="no EOSLAB-TORCH/1 checksum"):
        assert store.load_tensors("slices", "k") is None
    store.save_tensors("slices", "k", {"grid": torch.ones(2), "n": 2})
    assert store.load_tensors("slices", "k")["n"] == 2


# -- unwritable stores -------------------------------------------------------------------
def _no_training(monkeypatch):
    import eoslab.core.experiment as experiment

    def fail(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(experiment, "build_setup", fail)


@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_a_store_that_is_a_file_fails_before_training(tmp_path, monkeypatch, where):
    blocker = tmp_path / "store"
    blocker.write_text("not a folder")
    root = blocker if where == "file" else blocker / "sub"
    _no_training(monkeypatch)
    with pytest.raises(StoreError, match=re.escape(str(blocker))) as info:
        run(SMALL, store=RunStore(root))
    assert isinstance(info.value, OSError) and isinstance(info.value, ValueError)


def test_a_read_only_store_fails_before_training(tmp_path, monkeypatch):
    root = tmp_path / "store"
    real = store_module.tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).is_relative_to(root):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(store_module.tempfile, "mkstemp", read_only)
    _no_training(monkeypatch)
    with pytest.raises(StoreError, match=re.escape(str(root / "runs")) + ".*Permission denied"):
        run(SMALL, store=RunStore(root))


def test_a_read_only_store_still_serves_what_it_holds(tmp_path, monkeypatch):
    store = RunStore(tmp_path)
    first = run(SMALL, store=store)
    _no_training(monkeypatch)
    monkeypatch.setattr(RunStore, "check_writable", lambda self, kind="runs": 1 / 0)
    again = run(SMALL, store=store)
    assert again.extra["from_store"] and again.history == first.history


def test_the_cli_names_an_unusable_store_without_a_traceback(tmp_path):
    blocker = tmp_path / "store"
    blocker.write_text("x")
    out = subprocess.run([sys.executable, "-m", "eoslab.cli", "run", "--steps", "5",
                          "--quiet"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "EOSLAB_STORE": str(blocker)})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert str(blocker) in out.stderr and "is a file" in out.stderr


# -- a full disk at save time --------------------------------------------------------------
def _full_disk(monkeypatch, full: Path):
    real = store_module.atomic_write_bytes

    def write(path, data):
        if Path(path).is_relative_to(full):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(store_module, "atomic_write_bytes", write)


def test_a_result_the_store_cannot_take_is_kept_in_the_fallback(tmp_path, monkeypatch,
                                                                reference):
    root, fallback = tmp_path / "store", tmp_path / "fallback"
    store = RunStore(root, fallback=fallback)
    store.check_writable("runs")  # writable when checked; the disk fills during training
    _full_disk(monkeypatch, root)
    with pytest.warns(StoreWarning, match=re.escape(str(_result(store))) + ".*No space left"
                      + ".*" + re.escape(str(fallback))):
        result = run(SMALL, store=store)
    kept = Path(result.extra["saved_to"])
    assert kept == fallback / "runs" / SMALL.key() / "result.json"
    assert RunStore(fallback).load_run(SMALL).column("loss") == reference.column("loss")
    assert not _result(store).exists()


def test_the_default_fallback_is_a_fresh_temporary_folder(tmp_path, monkeypatch):
    import tempfile

    root = tmp_path / "store"
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    _full_disk(monkeypatch, root)
    with pytest.warns(StoreWarning, match="kept at"):
        kept = RunStore(root).save_json("slices", "k", {"a": 1})
    assert kept.parent.parent.parent.parent == tmp_path / "tmp"
    assert kept.parent.parent.parent.name.startswith("eoslab-unsaved-")
    assert json.loads(kept.read_text())["data"] == {"a": 1}


def test_a_result_nowhere_to_be_saved_is_still_returned(tmp_path, monkeypatch, reference):
    store = RunStore(tmp_path / "store", fallback=tmp_path / "fallback")
    store.check_writable("runs")
    _full_disk(monkeypatch, tmp_path)
    with pytest.warns(StoreWarning, match="was not saved.*No space left"):
        result = run(SMALL, store=store)
    assert result.column("loss") == reference.column("loss")
    with pytest.raises(StoreError, match="nor the fallback copy"):
        store.save_json("slices", "k", {"a": 1})


def test_checkpointer_load_without_a_run_checks_only_the_basics(tmp_path):
    checkpoint = Checkpointer(tmp_path / "c.pt", every=1)
    assert checkpoint.load() is None
    checkpoint.save({"model": {}, "optimizer": {}, "history": [], "step": 3})
    assert checkpoint.load()["step"] == 3
    with pytest.warns(StoreWarning, match="beyond the run's 2 steps"):
        assert checkpoint.load(max_step=2) is None
