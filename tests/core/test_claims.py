"""Claim files: one winner per key across processes, leases, takeover of dead owners' claims."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from eoslab.core.claims import Claims, claimed
from eoslab.core.config import TrainConfig
from eoslab.core.experiment import run
from eoslab.core.store import RunStore


def _foreign_claim(claims, key, age=0.0, token="theirs"):
    path = claims.path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = {"host": "another-machine", "boot_id": "x", "pid": 1, "start": None}
    path.write_text(json.dumps({"owner": owner, "token": token, "lease": claims.lease}))
    if age:
        then = time.time() - age
        os.utime(path, (then, then))
    return path


def _race(root, key, barrier, results):
    claims = Claims(RunStore(root), lease=60)
    barrier.wait()
    won = claims.acquire(key) is not None
    results.put(won)
    barrier.wait()  # hold the claim until every contender has tried
    claims.close()


@pytest.mark.parametrize("stale_before", [False, True])
def test_exactly_one_of_many_processes_wins(tmp_path, stale_before):
    """Fresh keys are won by one O_EXCL create; a stale claim by one rename and create."""
    if stale_before:
        _foreign_claim(Claims(RunStore(tmp_path), lease=60), "k", age=3600)
    ctx = multiprocessing.get_context("fork")
    n = 6
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(tmp_path, "k", barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * n
    assert sorted(results.get(timeout=5) for _ in range(n)) == [False] * (n - 1) + [True]
    assert not (tmp_path / "runs" / "k" / "claim.json").exists()  # released by the winner
    assert not [f for f in os.listdir(tmp_path / "runs" / "k") if f.endswith(".stale")]


def test_a_dead_owner_on_this_machine_is_stale_at_once(tmp_path):
    code = ("import sys, time; from eoslab.core.claims import Claims; "
            "from eoslab.core.store import RunStore; "
            "c = Claims(RunStore(sys.argv[1]), lease=3600); assert c.acquire('k'); "
            "print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True, cwd=os.getcwd())
    try:
        assert proc.stdout.readline().strip() == "held"
        claims = Claims(RunStore(tmp_path), lease=3600)
        assert claims.acquire("k") is None and not claims.holder("k")["stale"]
        os.kill(proc.pid, signal.SIGKILL)  # not waited for yet: a zombie counts as dead
        deadline = time.monotonic() + 10
        while not claims.holder("k")["stale"] and time.monotonic() < deadline:
            time.sleep(0.05)
        claim = claims.acquire("k")
        assert claim is not None and claims.holder("k")["pid"] == os.getpid()
        claims.close()
    finally:
        proc.kill()
        proc.wait()


def test_a_foreign_claim_is_stale_only_after_its_lease(tmp_path):
    claims = Claims(RunStore(tmp_path), lease=30)
    path = _foreign_claim(claims, "k")
    info = claims.holder("k")
    assert info["host"] == "another-machine" and not info["stale"] and info["age"] < 30
    assert claims.acquire("k") is None
    then = time.time() - 31
    os.utime(path, (then, then))
    assert claims.holder("k")["stale"]
    claim = claims.acquire("k")
    assert claim is not None and claims.owns(claim)
    claims.close()
    assert claims.holder("k") is None


def test_a_half_written_claim_counts_as_held_until_its_lease_ends(tmp_path):
    claims = Claims(RunStore(tmp_path), lease=30)
    path = claims.path("k")
    path.parent.mkdir(parents=True)
    path.write_text("")
    assert claims.acquire("k") is None
    then = time.time() - 60
    os.utime(path, (then, then))
    assert claims.acquire("k") is not None
    claims.close()


def test_the_heartbeat_keeps_a_claim_fresh(tmp_path):
    claims = Claims(RunStore(tmp_path), lease=0.4)
    claim = claims.acquire("k")
    time.sleep(1.2)
    assert claims.holder("k")["age"] < 0.4 and claims.owns(claim) and not claim.lost
    claims.close()


def test_a_taken_over_claim_is_lost_and_its_old_owner_leaves_it(tmp_path):
    claims = Claims(RunStore(tmp_path), lease=30)
    claim = claims.acquire("k")
    claims.path("k").unlink()
    _foreign_claim(claims, "k", token="new-owner")
    claims.renew()
    assert claim.lost
    claims.release(claim)
    assert json.loads(claims.path("k").read_text())["token"] == "new-owner"


def test_a_takeover_puts_back_a_claim_that_changed_since_it_was_judged(tmp_path):
    claims = Claims(RunStore(tmp_path), lease=30)
    claim = claims.acquire("k")
    assert not claims._take_over("k", (0, 0))  # not the file judged stale: linked back
    assert claims.owns(claim)
    assert [f for f in os.listdir(claims.path("k").parent)] == ["claim.json"]
    claims.close()


def test_lease_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="lease=0 is not allowed"):
        Claims(RunStore(tmp_path), lease=0)


def test_a_run_waits_for_the_worker_holding_its_key_and_reads_its_result(tmp_path):
    store = RunStore(tmp_path)
    config = TrainConfig(dataset="sine", n_train=16, width=4, steps=5, record_every=5)
    other = Claims(store, lease=30)
    held = other.acquire(config.key())
    trained = []

    def worker():
        time.sleep(0.5)
        trained.append(run(config, store=store))
        other.release(held)

    thread = threading.Thread(target=worker)
    thread.start()
    result = run(config, store=store, lease=30)
    thread.join()
    assert result.extra.get("from_store") and not trained[0].extra.get("from_store")
    assert result.history == trained[0].history
    assert claimed(store, "free", lambda: "computed", lease=30) == "computed"
    assert Claims(store).holder("free") is None and Claims(store).holder(config.key()) is None
