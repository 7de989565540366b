"""Grids into the store: batched groups equal to single runs, resumable, claimed, tabulated.

Equality with :func:`eoslab.core.experiment.run` (what ``eoslab run`` calls) is to a relative
1e-5 in float32: the batched engine adds in another order and reproduces fit to ~2e-7 over
these 60 steps, so the tolerance leaves a factor of ~50.
"""

import json
import os
import threading
import time

import pytest
import torch
from stored_runs import assert_equal_runs, stored_files

from eoslab.core.claims import Claims
from eoslab.core.config import TrainConfig
from eoslab.core.experiment import run
from eoslab.core.run_table import format_table, parse_where, run_values, sharpness_band, stored_runs
from eoslab.core.store import RunStore, StoreWarning
from eoslab.core.sweep_plan import plan, settle
from eoslab.core.train import Run

BASE = TrainConfig(n_train=100, width=16, steps=60, record_every=10, device="cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_plan_batches_step_sizes_and_seeds_of_one_architecture():
    configs = [BASE.replace(lr=lr, model_seed=s, width=w)
               for w in (8, 16) for s in (0, 1) for lr in (0.1, 0.2)]
    configs += [BASE.replace(optimizer="adam", lr=lr) for lr in (0.01, 0.02)]
    configs += [BASE.replace(batch_size=10), BASE.replace(model="cnn-bn", width=2)]
    groups = plan(configs)
    assert [(len(g.configs), g.batched) for g in groups] == [
        (4, True), (4, True), (1, False), (1, False), (1, False), (1, False)]
    assert groups[0].steps == 240 and "batched sweep of 4" in groups[0].describe()
    assert all(not g.batched for g in plan(configs, batch=False))
    parts = plan(configs[:8], max_copies=3)  # a big group spread over several tasks / GPUs
    assert [(len(g.configs), g.batched) for g in parts] == [(3, True), (1, False)] * 2
    assert [c for g in parts for c in g.configs] == configs[:8]
    with pytest.raises(ValueError, match="max_copies=0 is not allowed"):
        plan(configs, max_copies=0)


def test_a_grid_settles_equal_to_single_runs_and_a_second_call_trains_nothing(tmp_path):
    store = RunStore(tmp_path)
    configs = [BASE.replace(lr=lr, model_seed=s, model=m)
               for lr in (0.05, 0.1, 2.0) for s in (0, 1) for m in ("fc-tanh", "fc-relu")]
    outcomes = settle(configs, store, progress=False, max_copies=5)
    assert [o.source for o in outcomes] == ["trained"] * 12
    assert [o.config for o in outcomes] == configs
    for o in outcomes:
        assert_equal_runs(store.load_run(o.config), run(o.config, store=False))
    assert any(o.run.diverged for o in outcomes)  # lr=2.0 diverges; stored like the others
    before = stored_files(store, configs)
    again = settle(configs, store, progress=False)
    assert [o.source for o in again] == ["store"] * 12 and stored_files(store, configs) == before
    assert not list(tmp_path.glob("runs/*/claim.json"))


def test_an_interrupted_grid_resumes_with_only_what_is_missing(tmp_path):
    store = RunStore(tmp_path)
    configs = [BASE.replace(lr=lr, width=w, steps=200) for w in (8, 12, 16, 20)
               for lr in (0.05, 0.1)]
    stop = threading.Event()

    def stop_after_the_first_result():
        while not stop.is_set():
            if list(tmp_path.glob("runs/*/result.json")):
                stop.set()
            time.sleep(0.01)

    watcher = threading.Thread(target=stop_after_the_first_result)
    watcher.start()
    first = settle(configs, store, progress=False, stop=stop)
    stop.set()
    watcher.join()
    trained = [o.config for o in first if o.source == "trained"]
    assert 0 < len(trained) < len(configs)
    assert {o.source for o in first} == {"trained", "stopped"}
    assert all(store.load_run(o.config) is None for o in first if o.source == "stopped")
    before = stored_files(store, configs)
    second = settle(configs, store, progress=False)
    assert [o.source for o in second] == ["store" if c in trained else "trained"
                                          for c in configs]
    assert {k: v for k, v in stored_files(store, configs).items() if k in before} == before
    assert not list(tmp_path.glob("runs/*/claim.json"))


def test_a_config_another_live_worker_holds_is_waited_for(tmp_path):
    store = RunStore(tmp_path)
    configs = [BASE.replace(lr=lr) for lr in (0.05, 0.1, 0.2)]
    other = Claims(store, lease=30)
    held = other.acquire(configs[1].key())

    def worker():
        time.sleep(1.0)
        run(configs[1], store=store)
        other.release(held)

    thread = threading.Thread(target=worker)
    thread.start()
    outcomes = settle(configs, store, progress=False, poll=0.1)
    thread.join()
    assert [o.source for o in outcomes] == ["trained", "other", "trained"]
    assert_equal_runs(outcomes[1].run, run(configs[1], store=False))


def test_a_failing_config_does_not_stop_the_others(tmp_path, monkeypatch):
    monkeypatch.setenv("EOSLAB_DATA", str(tmp_path / "no-data"))  # CIFAR-10 cannot load
    store = RunStore(tmp_path / "store")
    cifar = BASE.replace(dataset="cifar10-1k", n_train=None)
    configs = [BASE.replace(lr=0.1), cifar, BASE.replace(lr=0.2)]
    outcomes = settle(configs, store, progress=False)
    assert [o.source for o in outcomes] == ["trained", "failed", "trained"]
    assert outcomes[1].status == "failed" and outcomes[1].error
    assert not list(tmp_path.glob("runs/*/claim.json"))


def test_duplicate_keys_are_trained_once(tmp_path):
    configs = [BASE.replace(lr=0.1, device="cpu"), BASE.replace(lr=0.1, device="auto")]
    outcomes = settle(configs, RunStore(tmp_path), progress=False)
    assert [o.source for o in outcomes] == ["trained", "trained"]
    assert outcomes[0] is outcomes[1]


def test_sharpness_band_is_relative_to_two_over_eta():
    rows = [{"step": s, "lr": 0.1, "loss": 1.0, "sharpness": v}
            for s, v in enumerate([5.0, 10.0, 19.0, 21.0, 20.0])]
    band = sharpness_band(Run(history=rows))
    assert band == pytest.approx((0.95, 1.05))  # last half: 19, 21, 20 times 0.1 / 2
    assert sharpness_band(Run(history=[{"step": 0, "lr": 0.1, "loss": 1.0}])) is None
    values = run_values(BASE, Run(history=rows, status="diverged", diverged_at=(4, 1e9)))
    assert values["status"] == "diverged@4" and values["band"] == "0.95-1.05"
    assert parse_where("status=diverged").matches(values)
    assert values["final_loss"] == 1.0 and values["loss"] == "mse"


@pytest.mark.parametrize("text,match", [
    ("lr", "is not FIELD OP VALUE"),
    ("lrr<0.1", "field 'lrr' is unknown \\(did you mean 'lr'\\?\\)"),
    ("lr<abc", "'<' compares numbers"),
])
def test_bad_filters_are_named(text, match):
    with pytest.raises(ValueError, match=match):
        parse_where(text)


def test_stored_runs_lists_results_and_work_in_progress(tmp_path):
    store = RunStore(tmp_path)
    done = BASE.replace(steps=5, lr=0.1)
    run(done, store=store)
    claims = Claims(store, lease=30)
    claims.acquire("running0000000000")
    path = store.path("runs", "abandoned000000") / "claim.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"owner": {"host": "elsewhere", "pid": 7}, "token": "t"}))
    then = time.time() - 3600
    os.utime(path, (then, then))
    (store.path("runs", "broken0000000000")).mkdir(parents=True)
    (store.path("runs", "broken0000000000") / "result.json").write_text("{\"config\": ")
    with pytest.warns(StoreWarning, match="broken0000000000"):
        records = {r["key"]: r for r in stored_runs(store)}
    assert records[done.key()]["status"] == "finished" and records[done.key()]["lr"] == 0.1
    assert records["running0000000000"]["status"].startswith("running (")
    assert records["abandoned000000"]["status"] == "abandoned (elsewhere:7)"
    assert records["broken0000000000"]["status"] == "unreadable"
    claims.close()
    table = format_table(list(records.values()), ["key", "lr", "status"])
    assert table.splitlines()[0].split() == ["key", "lr", "status"] and "unreadable" in table
