import threading

from eoslab.core.config import TrainConfig
from eoslab.core.experiment import run
from eoslab.core.store import RunStore

SMALL = TrainConfig(n_train=64, width=16, steps=30, record_every=10, lr=0.1)


def test_run_is_stored_and_reused_at_once(tmp_path):
    store = RunStore(tmp_path)
    first = run(SMALL, store=store)
    assert first.status == "finished" and not first.extra.get("from_store")
    rows = []
    again = run(SMALL, store=store, callbacks=[rows.append])
    assert again.extra["from_store"] and again.history == first.history
    assert rows == first.history  # the live chart is fed the stored rows


def test_stopped_runs_are_not_stored(tmp_path):
    store = RunStore(tmp_path)
    stop = threading.Event()
    stop.set()
    assert run(SMALL, store=store, stop=stop).status == "stopped"
    assert store.load_run(SMALL) is None


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    store = RunStore(tmp_path)
    config = SMALL.replace(steps=40, batch_size=16)
    reference = run(config, store=False)
    stop = threading.Event()
    run(config, store=store, checkpoint_every=10, stop=stop,
        callbacks=[lambda r: stop.set() if r["step"] == 20 else None])
    assert store.load_run(config) is None
    assert store.checkpointer("runs", config.key(), 10).load()["step"] == 20
    resumed = run(config, store=store, checkpoint_every=10)
    assert resumed.column("loss") == reference.column("loss")
    assert not store.checkpointer("runs", config.key(), 10).path.exists()


def test_diverged_runs_are_stored_with_their_step(tmp_path):
    store = RunStore(tmp_path)
    config = SMALL.replace(lr=8.0)
    result = run(config, store=store)
    assert result.diverged and store.load_run(config).diverged_at == result.diverged_at
