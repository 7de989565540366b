"""``eoslab sweep`` and ``eoslab runs``: bad grids, the summary, resuming, concurrent sweeps.

Equality with ``eoslab run`` is to a relative 1e-5 in float32 (the batched engine adds in
another order; see tests/core/test_sweep_plan.py).
"""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest

from eoslab.cli import main
from eoslab.core.config import TrainConfig
from eoslab.core.store_files import decode_json
from eoslab.core.train import Run

TINY = ["--n-train", "100", "--width", "16", "--steps", "60", "--record-every", "10",
        "--device", "cpu", "--quiet"]


def _eoslab(*args, store, **kwargs):
    env = {**os.environ, "EOSLAB_STORE": str(store)}
    return subprocess.Popen([sys.executable, "-m", "eoslab.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def _results(root):
    """Every stored result, loaded whole: a truncated or corrupt file fails here."""
    out = {}
    for path in sorted((root / "runs").glob("*/result.json")):
        blob = decode_json(path.read_bytes())  # checksummed: a corrupt file fails here
        out[path.parent.name] = (TrainConfig.from_dict(blob["config"]), Run.from_json(blob["run"]))
    return out


def _stat(root):
    return {p.parent.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in (root / "runs").glob("*/result.json")}


@pytest.mark.parametrize("grid,match", [
    (["--grid", "lrr=0.1,0.2"], "unknown grid field 'lrr' (did you mean 'lr'?); fields: dataset"),
    (["--grid", "lr="], "grid field 'lr' has no values"),
    (["--grid", "lr=0.1,-0.5"], "grid value lr=-0.5 is rejected: lr=-0.5 is not allowed"),
    (["--grid", "model=fc-tanh,resnet50"], "grid value model='resnet50' is rejected"),
    (["--grid", "width=16,0"], "grid value width=0 is rejected: width=0 is not allowed"),
    (["--grid", "model_seed=0:x"], "grid value model_seed='0:x' is not a range"),
    ([], "no grid: give at least one --grid FIELD=VALUES"),
])
def test_bad_grids_fail_before_any_work_naming_the_value(grid, match, tmp_path, capsys):
    assert main(["sweep", *TINY, *grid]) == 2
    err = capsys.readouterr().err
    assert f"eoslab: error: {match}" in err and "Traceback" not in err
    assert not (tmp_path / "store").exists()  # the test's EOSLAB_STORE: nothing written


def test_sweep_summary_resume_runs_and_equality_with_eoslab_run(tmp_path, capsys):
    store = tmp_path / "store"
    grid = ["--grid", "lr=0.05,0.1,4.0", "--grid", "model_seed=0:2", "--sharpness-every", "20"]
    assert main(["sweep", *TINY, *grid, "--dry-run"]) == 0
    assert "batched sweep of 6" in capsys.readouterr().out and not store.exists()
    assert main(["sweep", *TINY, *grid, "--summary"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "6 configs: 6 trained here"
    assert out[1].split() == ["lr", "model_seed", "status", "final", "loss",
                              "sharpness/(2/lr)", "source"]
    rows = [line.split() for line in out[2:]]
    assert [r[:2] for r in rows] == [["0.05", "0"], ["0.05", "1"], ["0.1", "0"], ["0.1", "1"],
                                     ["4", "0"], ["4", "1"]]
    assert [r[2].split("@")[0] for r in rows] == ["finished"] * 4 + ["diverged"] * 2
    assert all(r[-1] == "trained" for r in rows)
    before = _stat(store)
    assert main(["sweep", *TINY, *grid, "--lr", "0.3"]) == 0  # an axis overrides the flag
    assert capsys.readouterr().out.startswith("6 configs: 6 from the store")
    assert _stat(store) == before

    assert main(["runs", "--where", "lr<0.5", "--where", "model_seed=1"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 3 and [line.split()[3] for line in listed[1:]] == ["0.05", "0.1"]
    assert main(["runs", "--where", "status=diverged", "--json"]) == 0
    assert [json.loads(line)["lr"] for line in capsys.readouterr().out.splitlines()] == [4.0, 4.0]
    assert main(["runs", "--where", "lr<x"]) == 2

    config, swept = next((c, r) for c, r in _results(store).values()
                         if c.lr == 0.1 and c.model_seed == 1)
    (tmp_path / "c.json").write_text(json.dumps(config.to_dict()))
    single = _eoslab("run", "--config", str(tmp_path / "c.json"), "--quiet",
                     store=tmp_path / "single")
    assert single.wait(120) == 0, single.stderr.read()
    (_, ref), = _results(tmp_path / "single").values()
    assert [r["step"] for r in swept.history] == [r["step"] for r in ref.history]
    for a, b in zip(swept.history, ref.history):
        for key in set(a) - {"time", "hvps", "sharpness"}:
            assert math.isclose(a[key], b[key], rel_tol=1e-5, abs_tol=1e-9), key
        if "sharpness" in a:  # each tracked to a 1e-2 relative residual
            assert math.isclose(a["sharpness"], b["sharpness"], rel_tol=2e-2)


@pytest.mark.slow  # two processes starting torch on 2 cores: 40-60 s
def test_two_processes_on_overlapping_grids_train_each_config_once(tmp_path):
    store = tmp_path / "shared"
    grids = [["--grid", "width=8,12,16,20", "--grid", "lr=0.05,0.1,0.2"],
             ["--grid", "width=20,16,12,8", "--grid", "lr=0.4,0.2,0.1"]]
    procs = [_eoslab("sweep", *TINY, *grid, "--summary", store=store) for grid in grids]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    trained = []
    for out, _ in outputs:
        lines = out.splitlines()
        assert lines[1].split()[:2] == ["width", "lr"]
        for line in lines[2:]:
            width, lr, *_, source = line.split()
            assert source in ("trained", "other", "store")  # the others: the other process
            if source == "trained":
                trained.append((int(width), float(lr)))
    union = {(w, lr) for w in (8, 12, 16, 20) for lr in (0.05, 0.1, 0.2, 0.4)}
    assert sorted(trained) == sorted(union)  # every config trained, none twice
    results = _results(store)
    assert {(c.width, c.lr) for c, _ in results.values()} == union
    assert all(run.status == "finished" and run.steps_done == 60 for _, run in results.values())
    assert not list(store.glob("runs/*/claim.json")) and not list(store.glob("runs/*/.*"))


def _wait_for_results(store, proc, n=1, timeout=120):
    deadline = time.monotonic() + timeout
    while len(_stat(store) if (store / "runs").exists() else {}) < n:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.02)


@pytest.mark.slow
def test_a_killed_sweep_is_finished_by_the_next_one_without_retraining(tmp_path):
    store = tmp_path / "store"
    args = ["sweep", *TINY, "--steps", "200", "--grid", "width=8,10,12,14,16,18",
            "--grid", "lr=0.05,0.1"]
    first = _eoslab(*args, store=store)
    _wait_for_results(store, first)
    first.send_signal(signal.SIGKILL)
    first.wait()
    kept = _stat(store)
    assert 0 < len(kept) < 12
    second = _eoslab(*args, store=store)  # the dead process's claims are taken over at once
    _wait_for_results(store, second, len(kept) + 1)
    second.send_signal(signal.SIGINT)
    _, err = second.communicate(timeout=60)
    assert second.returncode == 130 and "the same command finishes the rest" in err
    kept = _stat(store)
    third = _eoslab(*args, store=store)
    out, err = third.communicate(timeout=300)
    assert third.returncode == 0, err
    assert out.startswith(f"12 configs: {12 - len(kept)} trained here, {len(kept)} from the "
                          "store")
    after = _stat(store)
    assert len(after) == 12 and {k: after[k] for k in kept} == kept
    assert len(_results(store)) == 12 and not list(store.glob("runs/*/claim.json"))
