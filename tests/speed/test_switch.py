"""The speed switch: EOSLAB_SPEED=0 turns every layer off, with the same results to rounding.

The engines (fit, the batched sweep, landscape slices) must give the same float64 values
with the switch on and off; with it off none of the layers may run (detected by replacing
them with functions that raise); with it on they must run (the same replacement counts).
A model handed to an engine comes back with its own ``nn.Tanh`` modules.
"""

import math

import pytest
import torch
from torch import nn

from eoslab import speed
from eoslab.core.config import TrainConfig
from eoslab.core.data import load_dataset
from eoslab.core.models import build_model
from eoslab.core.optim import make_optimizer
from eoslab.core.sweep import sweep
from eoslab.core.train import fit
from eoslab.curvature.objective import Objective, trainable_params
from eoslab.geometry import directions as D
from eoslab.geometry.landscape import slice_1d
from eoslab.speed import fast_tanh, heap, linear_head, stacked_mlp, threads


@pytest.fixture
def fast_everywhere(monkeypatch):
    """The fused tanh at every size, so that on and off really compute differently."""
    monkeypatch.setattr(fast_tanh, "GRAD_MIN_NUMEL", 0)
    monkeypatch.setattr(fast_tanh, "NO_GRAD_MIN_NUMEL", 0)


@pytest.mark.parametrize("value,expected", [
    (None, True), ("1", True), ("on", True), ("0", False), ("false", False), (" OFF ", False),
    ("no", False)])
def test_enabled_reads_the_environment_at_every_call(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv(speed.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(speed.ENV_VAR, value)
    assert speed.enabled() is expected


def _net():
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Sequential(nn.Linear(4, 4), nn.Tanh()),
                         nn.Linear(4, 1))


def test_accelerated_swaps_tanh_for_the_block_and_restores_the_same_modules(monkeypatch):
    monkeypatch.delenv(speed.ENV_VAR, raising=False)
    net = _net()
    acts = [m for m in net.modules() if isinstance(m, nn.Tanh)]
    seen = []
    acts[0].register_forward_hook(lambda m, i, o: seen.append(type(m)))
    with speed.accelerated(net):
        assert all(type(m) is fast_tanh.Tanh for m in acts)
        assert [m for m in net.modules() if isinstance(m, nn.Tanh)] == acts
        with speed.accelerated(net):  # nested: the inner block restores nothing
            pass
        assert all(type(m) is fast_tanh.Tanh for m in acts)
        net(torch.randn(2, 3))
    assert seen == [fast_tanh.Tanh]  # the module's own hooks still run inside
    assert all(type(m) is nn.Tanh for m in acts)
    assert [m for m in net.modules() if isinstance(m, nn.Tanh)] == acts
    with pytest.raises(RuntimeError), speed.accelerated(net):
        raise RuntimeError
    assert all(type(m) is nn.Tanh for m in acts)


def test_switched_off_nothing_is_swapped_pinned_or_kept(monkeypatch):
    monkeypatch.setenv(speed.ENV_VAR, "0")
    monkeypatch.setattr(heap, "retained_heap", _forbidden("retained_heap"))
    net = _net()
    with speed.accelerated(net):
        assert all(type(m) is nn.Tanh for m in net.modules() if isinstance(m, nn.Tanh))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threads.single_thread():
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert speed.stacked_forward(net, (3,)) is None
    assert not isinstance(speed.fast_tanh_mode(), fast_tanh.FastTanh)


def _forbidden(name):
    def raise_(*args, **kwargs):
        raise AssertionError(f"{name} ran with the speed switch off")

    return raise_


def _spy(monkeypatch, calls: dict, switched_off: bool):
    """Replace every speed layer by a counting wrapper (one that raises when switched off)."""
    targets = [(fast_tanh, "tanh"), (fast_tanh, "_identity"), (heap, "retained_heap"),
               (stacked_mlp, "stacked_forward"), (linear_head, "split_linear_head")]
    for module, name in targets:
        original = getattr(module, name)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            if switched_off:
                raise AssertionError(f"{_name} ran with the speed switch off")
            calls[_name] = calls.get(_name, 0) + 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)


def _fit_once(dtype="float64"):
    data = load_dataset("digits", n_train=40, n_test=16, device="cpu", dtype=dtype)
    model = build_model("fc-tanh", data.input_shape, data.n_outputs, width=8, seed=1,
                        device="cpu", dtype=dtype)
    acts = [m for m in model.modules() if isinstance(m, nn.Tanh)]
    opt = make_optimizer("gd", model.parameters(), 0.3)
    run = fit(model, data, "mse", opt, steps=12, record_every=4)
    assert [type(m) for m in acts] == [nn.Tanh, nn.Tanh]
    assert [m for m in model.modules() if isinstance(m, nn.Tanh)] == acts
    return run, model


def _sweep_once():
    cfg = TrainConfig(dataset="digits", n_train=40, data_options={"n_test": 16}, width=8,
                      steps=12, record_every=4, dtype="float64", device="cpu",
                      sharpness_every=6)
    return sweep(cfg, lrs=[0.3, 1.0], store=False, sharpness_tol=1e-10)


def _slice_once():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, 6, generator=gen, dtype=torch.float64)
    y = torch.randn(20, 2, generator=gen, dtype=torch.float64)
    model = build_model("fc-tanh", (6,), 2, width=5, depth=2, seed=3, device="cpu",
                        dtype="float64")
    obj = Objective(model, "mse", x, y)
    base = trainable_params(model)
    direction = D.random_direction(base, seed=1)
    both = slice_1d(obj, base, direction, [-1.0, 0.0, 0.5, 2.0])
    loop = slice_1d(obj, base, direction, [-1.0, 0.5], method="loop")
    return both, loop


def _close_rows(a, b, rel=1e-10):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for key in ra:
            if key not in ("time", "hvps"):
                assert math.isclose(ra[key], rb[key], rel_tol=rel, abs_tol=1e-12), key


@pytest.mark.parametrize("switched_off", [False, True])
def test_engines_use_the_layers_only_when_switched_on(monkeypatch, fast_everywhere,
                                                      switched_off):
    monkeypatch.setenv(speed.ENV_VAR, "0" if switched_off else "1")
    calls: dict = {}
    _spy(monkeypatch, calls, switched_off)
    _fit_once()
    _sweep_once()
    _slice_once()
    if not switched_off:
        assert {"tanh", "_identity", "retained_heap", "stacked_forward",
                "split_linear_head"} <= set(calls)


def test_fit_sweep_and_slice_agree_with_the_switch_off(monkeypatch, fast_everywhere):
    results = {}
    for flag in ("1", "0"):
        monkeypatch.setenv(speed.ENV_VAR, flag)
        run, model = _fit_once()
        results[flag] = (run, [p.detach().clone() for p in model.parameters()],
                         _sweep_once(), _slice_once())
    (run_on, params_on, sweep_on, slice_on) = results["1"]
    (run_off, params_off, sweep_off, slice_off) = results["0"]
    assert run_on.status == run_off.status == "finished"
    _close_rows(run_on.history, run_off.history)
    for a, b in zip(params_on, params_off):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)
    for a, b in zip(sweep_on.runs, sweep_off.runs):
        assert a.status == b.status
        _close_rows(a.history, b.history, rel=1e-9)
    for a, b in zip(slice_on, slice_off):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-12, abs=1e-14)
