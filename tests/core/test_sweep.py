"""The batched sweep against the sequential loop it must reproduce, copy by copy.

Ground truth is :func:`eoslab.core.train.fit` (through ``eoslab.core.experiment``) run once per step
size / seed on tiny float64 problems, and dense Hessians from ``torch.func.hessian``.
"""

import math
import threading

import numpy as np
import pytest
import torch

from eoslab.core.config import TrainConfig
from eoslab.core.experiment import build_setup, run
from eoslab.core.store import RunStore
from eoslab.core.sweep import fit_batched, sweep
from eoslab.core.train import fit
from eoslab.speed import fast_tanh


@pytest.fixture(autouse=True)
def _one_thread():
    """Batched products on a busy 2-core machine: OpenMP threads only add waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(device, **changes):
    base = {"dataset": "digits", "n_train": 64, "data_options": {"n_test": 32}, "width": 16,
            "steps": 40, "record_every": 7, "dtype": "float64", "device": str(device)}
    return TrainConfig(**{**base, **changes})


def _assert_same_run(got, ref, rel=1e-8, sharp_rel=1e-8):
    assert (got.status, got.steps_done) == (ref.status, ref.steps_done)
    if ref.diverged_at is None:
        assert got.diverged_at is None
    else:
        assert got.diverged_at[0] == ref.diverged_at[0]
        assert math.isclose(got.diverged_at[1], ref.diverged_at[1], rel_tol=rel)
    assert [r["step"] for r in got.history] == [r["step"] for r in ref.history]
    for a, b in zip(got.history, ref.history):
        assert list(a) == list(b)  # same keys, same order
        for key in a:
            if key not in ("time", "hvps", "sharpness"):
                assert math.isclose(a[key], b[key], rel_tol=rel, abs_tol=1e-10), (a["step"], key)
            elif key == "sharpness":
                assert math.isclose(a[key], b[key], rel_tol=sharp_rel), (a["step"], a[key], b[key])


# mse: 0.5 and 1.2 train, 2.0 and 8.0 diverge at different steps, 1e5 overflows at once
LRS = [0.5, 1.2, 2.0, 8.0, 1e5]
# cross-entropy and sqrt-mse: steps of ~5 or more catapult chaotically (copies then differ
# by far more than rounding, in the batched and the sequential loop alike), 1e5 diverges
LRS_BOUNDED = [0.5, 2.0, 1e5]


@pytest.mark.parametrize("changes,lrs", [
    ({}, LRS),
    ({"loss": "ce", "chunk_size": 20}, LRS_BOUNDED),
    ({"loss": "sqrt-mse", "record_every": 5}, LRS_BOUNDED),
    ({"optimizer": "momentum", "momentum": 0.5, "weight_decay": 1e-3}, LRS),
    ({"optimizer": "nesterov", "momentum": 0.3}, LRS),
    ({"schedule": "cosine", "steps": 30}, LRS),
    ({"model": "cnn", "width": 2, "depth": 1, "steps": 20}, LRS),  # the general vmap path
])
def test_sweep_equals_sequential_runs(device, changes, lrs):
    cfg = _tiny(device, **changes)
    result = sweep(cfg, lrs=lrs, store=False)
    statuses = set()
    for lr, got in zip(lrs, result.runs):
        ref = run(cfg.replace(lr=lr), store=False)
        _assert_same_run(got, ref)
        statuses.add(ref.status)
    assert statuses == {"finished", "diverged"}  # both kinds of copy were exercised


def test_divergence_between_records_and_at_the_final_step():
    cfg = _tiny("cpu", record_every=10, steps=200)
    probe = run(cfg.replace(lr=1.6), store=False)
    assert probe.diverged and probe.diverged_at[0] % 10 != 0  # found between records
    last = probe.diverged_at[0]
    cfg = cfg.replace(steps=last)  # now it diverges exactly at the final evaluation
    result = sweep(cfg, lrs=[0.3, 1.6], store=False)
    for lr, got in zip([0.3, 1.6], result.runs):
        _assert_same_run(got, run(cfg.replace(lr=lr), store=False))
    assert result.runs[1].diverged_at[0] == last == result.runs[1].steps_done


def test_seed_sweep_equals_sequential_runs():
    cfg = _tiny("cpu", steps=15, record_every=5)
    result = sweep(cfg, lrs=[0.3, 0.9], seeds=[0, 1, 2], store=False)
    assert [(c.model_seed, c.lr) for c in result.configs] == [
        (s, lr) for s in (0, 1, 2) for lr in (0.3, 0.9)]
    for cfg_i, got in result:
        _assert_same_run(got, run(cfg_i, store=False))
    finals = {round(r.history[-1]["loss"], 12) for r in result.runs}
    assert len(finals) == 6  # different seeds really are different inits


def test_diverged_copies_are_frozen_finite_and_do_not_poison_others():
    cfg = _tiny("cpu", steps=12, record_every=4, dtype="float32")
    setups = [build_setup(cfg) for _ in range(3)]
    models = [s.model for s in setups]
    runs = fit_batched(models, setups[0].data, "mse", [0.5, 1e30, 0.5], steps=12,
                       record_every=4)
    assert runs[1].diverged and runs[1].diverged_at[0] == 1
    assert not math.isfinite(runs[1].diverged_at[1]) or runs[1].diverged_at[1] > 1e3
    assert all(bool(torch.isfinite(p).all()) for p in models[1].parameters())
    assert runs[0].history == runs[2].history[:len(runs[0].history)] or all(
        a["loss"] == b["loss"] for a, b in zip(runs[0].history, runs[2].history))
    for a, b in zip(runs[0].history, runs[2].history):
        assert a["loss"] == b["loss"] and a["step"] == b["step"]


def _dense_sharpness_probe(every):
    def probe(ctx):
        obj = ctx.objective
        params = obj.params()
        shapes = {k: v.shape for k, v in params.items()}
        flat = torch.cat([v.reshape(-1) for v in params.values()])

        def f(vec):
            out, start = {}, 0
            for k, s in shapes.items():
                out[k] = vec[start:start + math.prod(s)].reshape(s)
                start += math.prod(s)
            return obj(out)

        hess = torch.func.hessian(f)(flat)
        return {"sharpness": float(torch.linalg.eigvalsh(hess)[-1]), "hvps": 0}

    probe.every = every
    return probe


@pytest.mark.parametrize("loss,chunk_size,fast", [
    ("mse", 8, False), ("sqrt-mse", 8, False), ("mse", None, False), ("sqrt-mse", None, False),
    ("mse", None, True), ("sqrt-mse", 8, True)])
def test_tracked_sharpness_equals_dense_hessian_eigenvalue(device, loss, chunk_size, fast,
                                                          monkeypatch):
    """Chunked data uses jvp-of-grad products, one chunk the cached double-backward graph;
    ``fast``: every tanh of fit and the sweep (not of the dense reference, a torch.func
    transform) is eoslab.speed.fast_tanh's one-node function, whatever its size."""
    if fast:
        monkeypatch.setattr(fast_tanh, "GRAD_MIN_NUMEL", 0)
        monkeypatch.setattr(fast_tanh, "NO_GRAD_MIN_NUMEL", 0)
    cfg = TrainConfig(dataset="sine", n_train=16, width=4, depth=1, steps=24, record_every=8,
                      sharpness_every=6, loss=loss, dtype="float64", device=str(device),
                      chunk_size=chunk_size)
    lrs = [0.05, 0.4]
    result = sweep(cfg, lrs=lrs, store=False, sharpness_tol=1e-10)
    for lr, got in zip(lrs, result.runs):
        setup = build_setup(cfg.replace(lr=lr))
        ref = fit(setup.model, setup.data, loss, setup.optimizer, steps=cfg.steps,
                  chunk_size=cfg.chunk_size, record_every=cfg.record_every,
                  probes=[_dense_sharpness_probe(6)])
        _assert_same_run(got, ref, rel=1e-9, sharp_rel=1e-7)
        steps = [r["step"] for r in got.history if "sharpness" in r]
        assert steps == [0, 6, 12, 18, 24]
        assert all(1 <= r["hvps"] <= 13 for r in got.history if "hvps" in r)


def test_tracked_sharpness_agrees_with_the_sharpness_probe():
    """Against experiment.run with SharpnessProbe (same residual rule, tol 1e-2): the two
    estimates each lie within tol of an eigenvalue near the top (Kahan), so within 2 tol."""
    cfg = _tiny("cpu", steps=20, record_every=10, sharpness_every=5)
    result = sweep(cfg, lrs=[0.3, 1.5], store=False)
    for lr, got in zip([0.3, 1.5], result.runs):
        _assert_same_run(got, run(cfg.replace(lr=lr), store=False), sharp_rel=2e-2)
        assert [r["step"] for r in got.history if "sharpness" in r] == [0, 5, 10, 15, 20]


def test_sweep_stores_runs_that_experiment_run_reuses(tmp_path):
    store = RunStore(tmp_path)
    cfg = _tiny("cpu", steps=10, record_every=5)
    first = sweep(cfg, lrs=[0.2, 0.4], store=store)
    assert first.reused == 0
    again = run(cfg.replace(lr=0.4), store=store)
    assert again.extra.get("from_store") and again.history == first.runs[1].history
    second = sweep(cfg, lrs=[0.2, 0.4, 0.6], store=store)
    assert second.reused == 2 and second.runs[0].history == first.runs[0].history
    _assert_same_run(second.runs[2], run(cfg.replace(lr=0.6), store=False))
    assert second.run_for(0.6) is second.runs[2]


def test_stop_ends_the_sweep_and_stores_nothing(tmp_path):
    store = RunStore(tmp_path)
    stop = threading.Event()
    seen = []

    def callback(index, row):
        seen.append((index, row["step"]))
        stop.set()

    result = sweep(_tiny("cpu", steps=50), lrs=[0.1, 0.2], store=store, stop=stop,
                   callbacks=[callback])
    assert [r.status for r in result.runs] == ["stopped", "stopped"]
    assert seen == [(0, 0), (1, 0)] and result.runs[0].steps_done == 1
    assert store.load_run(result.configs[0]) is None


@pytest.mark.parametrize("kwargs,match", [
    ({"lrs": []}, "lrs is empty"),
    ({"lrs": [0.1, -0.2]}, "lr=-0.2"),
    ({"lrs": [0.0]}, "lr=0.0"),
    ({"lrs": [float("nan")]}, "lr=nan"),
    ({"lrs": [0.1, 0.1]}, "repeats"),
    ({"seeds": [0, 1.5]}, "seed 1.5"),
    ({"seeds": []}, "seeds is empty"),
])
def test_bad_inputs_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sweep(_tiny("cpu"), store=False, **kwargs)


@pytest.mark.parametrize("changes,match", [
    ({"model": "cnn-bn"}, "model='cnn-bn' has BatchNorm"),
    ({"model": "resnet-small"}, "resnet-small"),
    ({"optimizer": "adam"}, "optimizer='adam' is not supported"),
    ({"batch_size": 16}, "batch_size=16"),
])
def test_unsupported_configs_are_rejected_by_name(changes, match):
    with pytest.raises(ValueError, match=match):
        sweep(_tiny("cpu", **changes), lrs=[0.1], store=False)


def test_fit_batched_rejects_batchnorm_and_bad_tables():
    setup = build_setup(TrainConfig(model="cnn-bn", width=2, depth=1, n_train=8,
                                    device="cpu"))
    with pytest.raises(ValueError, match="BatchNorm"):
        fit_batched([setup.model], setup.data, "mse", [0.1], steps=2)
    setup = build_setup(_tiny("cpu"))
    with pytest.raises(ValueError, match="lrs must give 1 finite"):
        fit_batched([setup.model], setup.data, "mse", np.ones((1, 3)), steps=5)
    with pytest.raises(ValueError, match="models is empty"):
        fit_batched([], setup.data, "mse", [], steps=5)
