"""The CUDA path of fit, the batched sweep, the sharpness probe and the landscape slices.

Each test runs a computation on the GPU in float64 and compares it with the same computation
on the CPU: GPU reductions add in another order, so values agree to ~1e-9 relative, not bit
for bit; step counts, divergence steps and statuses agree exactly.  Marked ``cuda``:
``scripts/gpu-check`` runs them (``pytest -m cuda``).  Without a CUDA device they run with
``device="cpu"`` (or ``EOSLAB_CUDA_TESTS_DEVICE``), which checks their logic and the
device plumbing (configs, transfers, the batched sweep against sequential runs) but not a
GPU: the GPU figures come from ``scripts/gpu-check`` on one.
"""

import math
import os

import pytest
import torch

from eoslab.core.config import TrainConfig
from eoslab.core.experiment import build_setup, run
from eoslab.core.sweep import sweep
from eoslab.core.train import fit
from eoslab.curvature.objective import Objective
from eoslab.curvature.sharpness import SharpnessProbe
from eoslab.geometry.directions import filter_normalize, random_direction
from eoslab.geometry.landscape import slice_1d, slice_2d

pytestmark = pytest.mark.cuda
DEVICE = os.environ.get("EOSLAB_CUDA_TESTS_DEVICE") or (
    "cuda" if torch.cuda.is_available() else "cpu")


def _cfg(**changes):
    base = {"dataset": "digits", "n_train": 128, "data_options": {"n_test": 64}, "width": 32,
            "steps": 40, "record_every": 10, "dtype": "float64", "device": DEVICE}
    return TrainConfig(**{**base, **changes})


def _close(a, b, rel):
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def _same_run(got, ref, rel=1e-8, sharp_rel=1e-8):
    assert (got.status, got.steps_done, got.diverged_at is None) == (
        ref.status, ref.steps_done, ref.diverged_at is None)
    if ref.diverged_at is not None:
        assert got.diverged_at[0] == ref.diverged_at[0]
    assert [r["step"] for r in got.history] == [r["step"] for r in ref.history]
    for a, b in zip(got.history, ref.history):
        for key in set(a) & set(b) - {"time", "hvps"}:
            tol = sharp_rel if key == "sharpness" else rel
            assert _close(a[key], b[key], tol), (a["step"], key, a[key], b[key])


def test_fit_on_cuda_matches_the_cpu():
    setup = build_setup(_cfg())
    assert next(setup.model.parameters()).device.type == DEVICE
    assert setup.data.x_train.device.type == DEVICE
    _same_run(run(_cfg(), store=False), run(_cfg(device="cpu"), store=False))
    sgd = {"optimizer": "momentum", "momentum": 0.9, "batch_size": 32, "lr": 0.02}
    _same_run(run(_cfg(**sgd), store=False), run(_cfg(device="cpu", **sgd), store=False))
    fast = run(_cfg(dtype="float32", steps=300, lr=0.2), store=False)  # float32 kernels
    assert fast.status == "finished"
    assert fast.history[-1]["loss"] < 0.5 * fast.history[0]["loss"]


def test_sweep_on_cuda_matches_sequential_runs():
    cfg = _cfg(sharpness_every=10)
    lrs = [0.05, 0.5, 50.0]  # the last one diverges
    result = sweep(cfg, lrs=lrs, seeds=[0, 1], store=False)
    assert result.runs[2].diverged and not result.runs[0].diverged
    for config, got in result:
        ref = run(config.replace(device="cpu"), store=False)
        # both track the sharpness to a 1e-2 relative residual (SharpnessProbe's default)
        _same_run(got, ref, rel=1e-8, sharp_rel=2e-2)


def _dense_sharpness(every):
    def probe(ctx):
        params = ctx.objective.params()
        names = list(params)
        flat = torch.cat([params[k].reshape(-1) for k in names])

        def f(vec):
            out, start = {}, 0
            for k in names:
                n = params[k].numel()
                out[k] = vec[start:start + n].reshape(params[k].shape)
                start += n
            return ctx.objective(out)

        return {"sharpness": float(torch.linalg.eigvalsh(torch.func.hessian(f)(flat))[-1])}

    probe.every = every
    return probe


def test_sharpness_probe_on_cuda_equals_the_dense_hessian_on_the_cpu():
    cfg = TrainConfig(dataset="sine", n_train=16, width=6, depth=1, steps=24, lr=0.3,
                      record_every=6, dtype="float64")
    histories = []
    for device, probe in ((DEVICE, SharpnessProbe(every=6, tol=1e-10)),
                          ("cpu", _dense_sharpness(6))):
        setup = build_setup(cfg.replace(device=device))
        histories.append(fit(setup.model, setup.data, cfg.loss, setup.optimizer,
                             steps=cfg.steps, record_every=cfg.record_every,
                             probes=[probe]).history)
    got, ref = histories
    assert [r["step"] for r in got if "sharpness" in r] == [0, 6, 12, 18, 24]
    for a, b in zip(got, ref):
        assert _close(a["sharpness"], b["sharpness"], 1e-7), (a["step"], a["sharpness"],
                                                              b["sharpness"])
        assert _close(a["loss"], b["loss"], 1e-9)


def test_landscape_slices_on_cuda_match_the_cpu():
    results = []
    for device in (DEVICE, "cpu"):
        setup = build_setup(_cfg(device=device, steps=20))
        fit(setup.model, setup.data, "mse", setup.optimizer, steps=20, record_every=20)
        obj = Objective(setup.model, "mse", setup.data.x_train, setup.data.y_train)
        base = obj.params()
        d1 = filter_normalize(random_direction(base, seed=1), base)
        d2 = filter_normalize(random_direction(base, seed=2), base)
        test = (setup.data.x_test, setup.data.y_test)
        line = slice_1d(obj, base, d1, torch.linspace(-1, 1, 9), test=test)
        plane = slice_2d(obj, base, d1, d2, torch.linspace(-1, 1, 5), torch.linspace(-1, 1, 4))
        assert {v.device.type for v in d1.values()} == {device}
        results.append((line, plane))
    (line, plane), (line_cpu, plane_cpu) = results
    assert set(line) == set(line_cpu) and {"loss", "test_loss"} <= set(line)
    for key in ("loss", "test_loss"):
        assert all(_close(a, b, 1e-9) for a, b in zip(line[key], line_cpu[key])), key
    assert all(_close(a, b, 1e-9) for row, row_cpu in zip(plane["loss"], plane_cpu["loss"])
               for a, b in zip(row, row_cpu))
    assert line["loss"][4] == pytest.approx(line_cpu["loss"][4], rel=1e-9)
