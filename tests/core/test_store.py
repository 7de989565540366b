import json
import signal
import subprocess
import sys
import time
import warnings

import pytest

from eoslab.core.config import TrainConfig
from eoslab.core.store import RunStore
from eoslab.core.train import Run


def test_run_round_trips_under_its_config_key(tmp_path):
    store = RunStore(tmp_path)
    config = TrainConfig(lr=0.3, steps=7)
    run = Run(history=[{"step": 0, "loss": 1.5}, {"step": 7, "loss": float("nan")}],
              status="diverged", diverged_at=(7, float("inf")), steps_done=7, seconds=0.5)
    assert store.load_run(config) is None
    store.save_run(config, run)
    back = store.load_run(config)
    assert back.status == "diverged" and back.diverged_at == (7, float("inf"))
    assert back.history[0] == {"step": 0, "loss": 1.5} and back.steps_done == 7
    assert store.load_run(config.replace(lr=0.31)) is None


def test_tensors_round_trip(tmp_path):
    import torch

    store = RunStore(tmp_path)
    store.save_tensors("slices", "k1", {"grid": torch.arange(6.0).reshape(2, 3), "n": 3})
    back = store.load_tensors("slices", "k1")
    assert back["n"] == 3 and torch.equal(back["grid"], torch.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize("part", ["", "../x", "a/b", ".hidden"])
def test_bad_store_names_are_rejected(tmp_path, part):
    with pytest.raises(ValueError, match="not allowed"):
        RunStore(tmp_path).save_json("runs", part, {})


_WRITER = """
import sys, json
from eoslab.core.store import RunStore
store = RunStore(sys.argv[1])
store.save_json("runs", "k", {"version": "old"})
print("ready", flush=True)
big = {"version": "new", "payload": "x" * 10_000_000}
i = 0
while True:
    big["i"] = i
    store.save_json("runs", "k", big)
    i += 1
"""


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.45])
def test_a_write_killed_midway_never_leaves_a_corrupt_result(tmp_path, delay):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    text = (tmp_path / "runs" / "k" / "result.json").read_text()
    blob = json.loads(text)["data"]  # must parse: old or a complete new one
    assert blob["version"] in ("old", "new")
    if blob["version"] == "new":
        assert len(blob["payload"]) == 10_000_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and pass its checksum
        assert RunStore(tmp_path).load_json("runs", "k") == blob


def test_results_carry_a_sha256_of_their_content(tmp_path):
    import hashlib

    path = RunStore(tmp_path).save_json("slices", "k", {"b": 1, "a": [1.5, float("inf")]})
    assert path == tmp_path / "slices" / "k" / "result.json"
    envelope = json.loads(path.read_text())
    assert envelope["format"] == "eoslab-result/1" and envelope["data"]["b"] == 1
    canonical = json.dumps(envelope["data"], sort_keys=True, separators=(",", ":"))
    assert envelope["sha256"] == hashlib.sha256(canonical.encode()).hexdigest()


def test_tensors_and_checkpoints_are_loaded_with_weights_only(tmp_path, monkeypatch):
    import torch

    from eoslab.core import store as store_module

    calls = []
    real = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(store_module.torch, "load", spy)
    store = RunStore(tmp_path)
    store.save_tensors("slices", "k", {"grid": torch.zeros(2)})
    assert store.load_tensors("slices", "k")["grid"].shape == (2,)
    checkpoint = store.checkpointer("runs", "k", 1)
    checkpoint.save({"model": {}, "optimizer": {}, "history": [], "step": 0})
    assert checkpoint.load()["step"] == 0
    assert calls == [True, True]
