"""eoslab sweep on Ray, against a local Ray cluster this module starts (ray.init(num_cpus=2)).

Results are compared with :func:`eoslab.core.experiment.run` (what ``eoslab run`` calls) to a
relative 1e-5 in float32 (see tests/core/test_sweep_plan.py).  A worker killed mid-sweep
(SIGKILL of the process running a group's task) must lose nothing and retrain nothing that
was stored: Ray retries its task, which takes over the dead worker's claims.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from stored_runs import assert_equal_runs, stored_files

from eoslab.core import ray_sweep as ray_sweep_module
from eoslab.core.config import TrainConfig
from eoslab.core.experiment import run
from eoslab.core.store import RunStore

ray = pytest.importorskip("ray", reason="the Ray tests need the extra eoslab[cluster]")
pytestmark = pytest.mark.slow  # starting the cluster alone takes ~20 s on 2 cores
psutil = pytest.importorskip("psutil")

BASE = TrainConfig(n_train=100, width=16, steps=60, record_every=10, device="cpu")
GRID_12 = [BASE.replace(lr=lr, model_seed=s, model=m)
           for lr in (0.05, 0.1, 0.2) for s in (0, 1) for m in ("fc-tanh", "fc-relu")]


@pytest.fixture(scope="module")
def cluster():
    """A local two-CPU Ray cluster, shipping this checkout's eoslab to its workers."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env=ray_sweep_module.ray_runtime_env())
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _task_processes():
    return [p for p in psutil.Process().children(recursive=True)
            if p.is_running() and " ".join(p.cmdline()).startswith("ray::train_group")]


def test_a_12_config_grid_on_ray_equals_single_runs_and_returns_at_once_again(cluster,
                                                                               tmp_path,
                                                                               monkeypatch):
    store = RunStore(tmp_path)
    outcomes = ray_sweep_module.ray_sweep(GRID_12, store, progress=False)
    assert [o.source for o in outcomes] == ["trained"] * 12
    for o in outcomes:
        assert_equal_runs(store.load_run(o.config), run(o.config, store=False))
    before = stored_files(store, GRID_12)

    def no_ray():
        raise AssertionError("a fully stored grid must not touch Ray")

    monkeypatch.setattr(ray_sweep_module, "_ray", no_ray)
    again = ray_sweep_module.ray_sweep(GRID_12, store, progress=False)
    assert [o.source for o in again] == ["store"] * 12 and stored_files(store, GRID_12) == before


def test_killing_a_worker_mid_sweep_loses_and_recomputes_nothing(cluster, tmp_path):
    store = RunStore(tmp_path)
    configs = [BASE.replace(lr=lr, width=w, steps=400) for w in (8, 10, 12, 14, 16, 18)
               for lr in (0.05, 0.1)]
    result = {}
    driver = threading.Thread(target=lambda: result.update(
        outcomes=ray_sweep_module.ray_sweep(configs, store, progress=False, lease=3600)))
    driver.start()
    deadline = time.monotonic() + 120
    victim = None
    while victim is None and time.monotonic() < deadline and driver.is_alive():
        if stored_files(store, configs):
            busy = _task_processes()
            victim = busy[0] if busy else None
        time.sleep(0.02)
    assert victim is not None, "no worker was busy after the first result was stored"
    stored_before = stored_files(store, configs)
    os.kill(victim.pid, signal.SIGKILL)
    driver.join(240)
    assert not driver.is_alive()
    outcomes = result["outcomes"]
    assert all(o.source in ("trained", "other") for o in outcomes), [
        (o.source, o.error) for o in outcomes]
    after = stored_files(store, configs)
    assert len(after) == len(configs)
    assert {k: after[k] for k in stored_before} == stored_before  # nothing stored retrained
    assert not list(tmp_path.glob("runs/*/claim.json"))
    for o in outcomes[:2]:
        assert_equal_runs(store.load_run(o.config), run(o.config, store=False))


def test_eoslab_sweep_joins_a_running_cluster_and_a_repeat_returns_at_once(cluster, tmp_path):
    env = {**os.environ, "EOSLAB_STORE": str(tmp_path)}
    env.pop("RAY_AUTH_MODE", None)  # as in a fresh shell: eoslab finds the token itself
    args = [sys.executable, "-m", "eoslab.cli", "sweep", "--n-train", "100", "--width", "16",
            "--steps", "60", "--record-every", "10", "--device", "cpu", "--quiet",
            "--grid", "lr=0.05,0.1,0.2", "--grid", "model_seed=0:2",
            "--grid", "model=fc-tanh,fc-relu", "--ray", cluster, "--summary"]
    first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "12 configs: 12 trained here" in first.stdout
    rows = [line.split() for line in first.stdout.splitlines()[2:]]
    assert len(rows) == 12 and all(r[3] == "finished" for r in rows)
    store = RunStore(tmp_path)
    before = stored_files(store, GRID_12)
    assert len(before) == 12
    # nothing listens at port 1: a repeat that contacted Ray would fail
    args[args.index(cluster)] = "127.0.0.1:1"
    second = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "12 configs: 12 from the store" in second.stdout
    assert "nothing to train" in second.stderr and stored_files(store, GRID_12) == before
