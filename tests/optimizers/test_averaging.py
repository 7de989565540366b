"""SWA / EMA / FGE as fit probes, the SWA schedule, BN recalibration, ensembles."""

import pytest
import torch

from eoslab.core.data import load_dataset
from eoslab.core.losses import get_loss
from eoslab.core.models import build_model
from eoslab.core.optim import make_scheduler
from eoslab.core.train import fit
from eoslab.optimizers.averaging import (
    Snapshots,
    SWASchedule,
    WeightAverage,
    ensemble_outputs,
    evaluate_ensemble,
    recalibrate_bn,
)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _setup(name="fc-tanh", loss="mse", seed=0, dtype="float64"):
    data = load_dataset("digits", n_train=96, n_test=40, loss=loss, device="cpu", dtype=dtype)
    model = build_model(name, data.input_shape, data.n_outputs, width=8, depth=1, seed=seed,
                        device="cpu", dtype=dtype)
    return data, model


def test_swa_equals_the_mean_of_its_snapshots(one_thread):
    data, model = _setup()
    swa = WeightAverage(model, start=10, every=5)
    snaps = Snapshots(start=10, every=5)
    fit(model, data, "mse", torch.optim.SGD(model.parameters(), lr=0.2), steps=30,
        batch_size=32, record_every=100, probes=[swa, snaps])
    assert snaps.steps == [10, 15, 20, 25, 30] and swa.n_averaged == 5
    mean = {k: torch.stack([p[k] for p in snaps.params]).mean(dim=0) for k in snaps.params[0]}
    avg = swa.params()
    for k, v in mean.items():
        torch.testing.assert_close(avg[k], v)
    final = dict(model.named_parameters())
    assert any(not torch.allclose(avg[k], final[k]) for k in avg)  # not just the last iterate


def test_ema_matches_the_recursion(one_thread):
    data, model = _setup()
    decay = 0.8
    ema = WeightAverage(model, every=1, kind="ema", decay=decay)
    snaps = Snapshots(every=1)
    fit(model, data, "mse", torch.optim.SGD(model.parameters(), lr=0.2), steps=6,
        batch_size=32, record_every=100, probes=[ema, snaps])
    ref = dict(snaps.params[0])
    for p in snaps.params[1:]:
        ref = {k: decay * ref[k] + (1 - decay) * p[k] for k in ref}
    for k, v in ema.params().items():
        torch.testing.assert_close(v, ref[k])


def test_fge_snapshots_at_the_low_points_of_a_triangular_schedule(one_thread):
    data, model = _setup()
    opt = torch.optim.SGD(model.parameters(), lr=0.3)
    sched = make_scheduler("triangular", opt, 40, {"step_size_up": 5, "base_lr": 0.03})
    snaps = Snapshots(start=10, every=10)
    run = fit(model, data, "mse", opt, steps=40, scheduler=sched, batch_size=32,
              record_every=5, probes=[snaps])
    lrs = {row["step"]: row["lr"] for row in run.history}
    assert snaps.steps == [10, 20, 30, 40]
    assert all(lrs[s] == pytest.approx(min(lrs.values())) for s in snaps.steps)
    assert min(lrs.values()) == pytest.approx(0.03) and lrs[15] == pytest.approx(0.3)
    members = snaps.states
    out = evaluate_ensemble(model, members, "mse", data.x_test, data.y_test)
    mean_out = torch.stack([torch.func.functional_call(model, m, (data.x_test,))
                            for m in members]).mean(dim=0)
    assert out["loss"] == pytest.approx(float(get_loss("mse")(mean_out, data.y_test)), rel=1e-12)
    assert 0.0 <= out["acc"] <= 1.0


def test_ensemble_of_softmax_for_cross_entropy():
    data, model = _setup(loss="ce")
    _, other = _setup(loss="ce", seed=1)
    members = [dict(model.named_parameters()), dict(other.named_parameters())]
    probs = ensemble_outputs(model, members, data.x_test, probabilities=True, chunk_size=7)
    with torch.no_grad():
        ref = (model(data.x_test).softmax(-1) + other(data.x_test).softmax(-1)) / 2
    torch.testing.assert_close(probs, ref)
    out = evaluate_ensemble(model, members, "ce", data.x_test, data.y_test)
    nll = -ref.log()[torch.arange(len(data.y_test)), data.y_test].mean()
    assert out["loss"] == pytest.approx(float(nll), rel=1e-10)
    single = evaluate_ensemble(model, members[:1], "ce", data.x_test, data.y_test)
    with torch.no_grad():
        own = float(get_loss("ce")(model(data.x_test), data.y_test))
    assert single["loss"] == pytest.approx(own, rel=1e-10)


def test_swa_schedule_constant_and_cyclical():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = SWASchedule(opt, swa_start=3, swa_lr=0.1, anneal_steps=2)
    lrs = []
    for _ in range(8):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[:2] == [1.0, 1.0] and lrs[-1] == pytest.approx(0.1)
    opt2 = torch.optim.SGD([p], lr=1.0)
    cyc = SWASchedule(opt2, swa_start=2, swa_lr=0.2, cycle=4)
    got = []
    for _ in range(9):
        cyc.step()
        got.append(round(opt2.param_groups[0]["lr"], 6))
    # i = 2..9: tau = ((i-2) % 4 + 1)/4; lr = (1-tau)*1 + tau*0.2
    assert got == [1.0, 0.8, 0.6, 0.4, 0.2, 0.8, 0.6, 0.4, 0.2]
    again = SWASchedule(torch.optim.SGD([p], lr=1.0), swa_start=2, swa_lr=0.2, cycle=4)
    again.load_state_dict(cyc.state_dict())
    assert again.step_count == 9


def test_finalize_recalibrates_batchnorm():
    data, model = _setup("si-mlp")
    swa = WeightAverage(model, every=2)
    fit(model, data, "mse", torch.optim.SGD(model.parameters(), lr=0.1), steps=4,
        record_every=100, probes=[swa])
    averaged = swa.finalize(data.x_train, batch_size=32)
    with torch.no_grad():
        pre = averaged[1](averaged[0](data.x_train))
    torch.testing.assert_close(averaged[2].running_mean, pre.mean(dim=0))
    lin = torch.nn.Linear(2, 2)
    assert recalibrate_bn(lin, torch.zeros(3, 2)) is lin


def test_bad_inputs():
    model = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match="kind='median'"):
        WeightAverage(model, kind="median")
    with pytest.raises(ValueError, match="every=0"):
        Snapshots(every=0)
    with pytest.raises(ValueError, match="decay=1.5"):
        WeightAverage(model, kind="ema", decay=1.5)
    with pytest.raises(ValueError, match="nothing was averaged"):
        WeightAverage(model, start=5).finalize(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="ensemble is empty"):
        ensemble_outputs(model, [], torch.zeros(2, 2), probabilities=False)
    with pytest.raises(ValueError, match="swa_lr=0"):
        SWASchedule(torch.optim.SGD(model.parameters(), lr=0.1), swa_start=1, swa_lr=0)
