import threading

import pytest
import torch

from eoslab.core.data import load_dataset
from eoslab.core.losses import get_loss
from eoslab.core.models import build_model
from eoslab.core.optim import make_optimizer
from eoslab.core.store import Checkpointer
from eoslab.core.train import fit, full_batch_gradient


def _digits_setup(device, dtype="float64", n_train=64, width=16, loss="mse"):
    data = load_dataset("digits", n_train=n_train, n_test=32, device=device, dtype=dtype,
                        loss=loss)
    model = build_model("fc-tanh", data.input_shape, data.n_outputs, width=width, seed=0,
                        device=device, dtype=dtype)
    return data, model


def _grads(model):
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("loss", ["mse", "ce", "sqrt-mse"])
def test_chunked_gradient_equals_full_gradient(device, loss):
    data, model = _digits_setup(device, loss=loss)
    full, _ = full_batch_gradient(model, get_loss(loss), data.x_train, data.y_train, None)
    g_full = _grads(model)
    chunked, _ = full_batch_gradient(model, get_loss(loss), data.x_train, data.y_train, 10)
    assert torch.allclose(full, chunked, rtol=1e-12, atol=0)
    for a, b in zip(g_full, _grads(model)):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-14)


def test_sqrt_loss_gradient_matches_autograd():
    data, model = _digits_setup("cpu")
    value, _ = full_batch_gradient(model, get_loss("sqrt-mse"), data.x_train, data.y_train, 7)
    got = _grads(model)
    model.zero_grad()
    ref = get_loss("mse")(model(data.x_train), data.y_train).sqrt()
    ref.backward()
    assert torch.allclose(value, ref.detach())
    for a, p in zip(got, model.parameters()):
        assert torch.allclose(a, p.grad)


def _quadratic(device, lam_max=4.0):
    data = load_dataset("quadratic", spectrum=[lam_max, 1.0, 0.25], device=device,
                        dtype="float64")
    model = build_model("linear", data.input_shape, 1, device=device, dtype="float64")
    return data, model


@pytest.mark.parametrize("factor,diverges", [(0.9, False), (1.1, True)])
def test_gd_on_quadratic_converges_iff_lr_below_two_over_lambda_max(device, factor, diverges):
    data, model = _quadratic(device)
    lr = factor * 2 / 4.0
    opt = make_optimizer("gd", model.parameters(), lr)
    run = fit(model, data, "mse", opt, steps=2000, record_every=50)
    assert run.diverged == diverges
    if diverges:
        step, value = run.diverged_at
        # the error along the top eigenvector grows by |1 - lr*lam| = 1.2 per step:
        # crossing 1e3 x the first loss takes log(1e3)/(2 log 1.2) ~ 19 steps
        assert 10 < step < 60 and value > 1e3 * run.history[0]["loss"]
        assert run.steps_done == step
    else:
        assert run.status == "finished" and run.history[-1]["loss"] < 1e-12


def test_heavy_ball_threshold_is_two_plus_two_beta_over_lambda():
    beta = 0.5
    for factor, diverges in [(0.95, False), (1.05, True)]:
        data, model = _quadratic("cpu")
        lr = factor * (2 + 2 * beta) / 4.0
        opt = make_optimizer("momentum", model.parameters(), lr, momentum=beta)
        assert fit(model, data, "mse", opt, steps=3000, record_every=100).diverged == diverges


def test_history_rows_callbacks_and_cadence():
    data, model = _digits_setup("cpu")
    rows = []
    opt = make_optimizer("gd", model.parameters(), 0.05)
    run = fit(model, data, "mse", opt, steps=25, record_every=10, callbacks=[rows.append])
    assert [r["step"] for r in run.history] == [0, 10, 20, 25]
    assert rows == run.history
    for key in ("loss", "acc", "lr", "grad_norm", "weight_norm", "test_loss", "test_acc", "time"):
        assert key in run.history[0]
    assert run.history[-1]["loss"] < run.history[0]["loss"]


def test_recorded_loss_is_the_loss_at_that_steps_parameters():
    data, model = _digits_setup("cpu")
    opt = make_optimizer("gd", model.parameters(), 0.1)
    run = fit(model, data, "mse", opt, steps=5, record_every=1)
    with torch.no_grad():
        final = get_loss("mse")(model(data.x_train), data.y_train)
    assert run.history[-1]["loss"] == pytest.approx(float(final), rel=1e-12)


def test_probes_join_rows_at_their_own_cadence():
    class Probe:
        every = 4

        def __call__(self, ctx):
            return {"probe_step": ctx.step}

    data, model = _digits_setup("cpu")
    opt = make_optimizer("gd", model.parameters(), 0.05)
    run = fit(model, data, "mse", opt, steps=10, record_every=5, probes=[Probe()])
    assert [r["step"] for r in run.history] == [0, 4, 5, 8, 10]
    assert [r.get("probe_step") for r in run.history] == [0, 4, None, 8, None]


def test_stop_from_another_thread_ends_cleanly():
    data, model = _digits_setup("cpu")
    stop = threading.Event()

    def stop_soon(row):
        if row["step"] >= 20:
            stop.set()

    opt = make_optimizer("gd", model.parameters(), 0.05)
    run = fit(model, data, "mse", opt, steps=10_000, record_every=10, callbacks=[stop_soon],
              stop=stop)
    assert run.status == "stopped" and run.steps_done == 21


def test_minibatch_sgd_is_seeded_and_uses_full_train_loss_in_rows():
    def train(seed):
        data, model = _digits_setup("cpu")
        opt = make_optimizer("sgd", model.parameters(), 0.1)
        return fit(model, data, "mse", opt, steps=30, batch_size=8, seed=seed, record_every=10)

    a, b, c = train(0), train(0), train(1)
    assert a.column("loss") == b.column("loss") and a.column("loss") != c.column("loss")
    assert a.history[-1]["loss"] < a.history[0]["loss"]


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    def setup():
        data, model = _digits_setup("cpu")
        opt = make_optimizer("momentum", model.parameters(), 0.05, momentum=0.9)
        return data, model, opt

    data, model, opt = setup()
    full = fit(model, data, "mse", opt, steps=40, record_every=10, batch_size=16)

    ckpt = Checkpointer(tmp_path / "ckpt.pt", every=10)
    stop = threading.Event()
    data, model, opt = setup()
    fit(model, data, "mse", opt, steps=40, record_every=10, batch_size=16, checkpoint=ckpt,
        stop=stop, callbacks=[lambda r: stop.set() if r["step"] == 20 else None])
    state = ckpt.load()
    assert state["step"] == 20
    data, model, opt = setup()
    resumed = fit(model, data, "mse", opt, steps=40, record_every=10, batch_size=16,
                  resume_state=state)
    assert resumed.column("loss") == pytest.approx(full.column("loss"), rel=1e-12)


def test_float32_and_float64_runs_agree_loosely(device):
    losses = {}
    for dtype in ("float32", "float64"):
        data, model = _digits_setup(device, dtype=dtype)
        opt = make_optimizer("gd", model.parameters(), 0.1)
        losses[dtype] = fit(model, data, "mse", opt, steps=20, record_every=20).column("loss")
        assert next(model.parameters()).dtype == getattr(torch, dtype)
    assert losses["float32"] == pytest.approx(losses["float64"], rel=1e-4)


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": 0}, "steps=0"),
    ({"steps": 10, "record_every": 0}, "record_every=0"),
    ({"steps": 10, "batch_size": 1000}, "batch_size=1000"),
    ({"steps": 10, "chunk_size": -1}, "chunk_size=-1"),
])
def test_bad_inputs_name_the_value(kwargs, match):
    data, model = _digits_setup("cpu")
    opt = make_optimizer("gd", model.parameters(), 0.1)
    with pytest.raises(ValueError, match=match):
        fit(model, data, "mse", opt, **kwargs)


def test_wrong_shapes_are_a_clear_error():
    data, _ = _digits_setup("cpu")
    model = build_model("fc-tanh", (64,), 3, width=8, dtype="float64")
    opt = make_optimizer("gd", model.parameters(), 0.1)
    with pytest.raises(ValueError, match="does not match target shape"):
        fit(model, data, "mse", opt, steps=3)
    single = build_model("fc-tanh", (64,), 10, width=8)
    with pytest.raises(ValueError, match="torch.float32 but the data is torch.float64"):
        fit(single, data, "mse", make_optimizer("gd", single.parameters(), 0.1), steps=3)
    wide = build_model("fc-tanh", (10,), 10, width=8, dtype="float64")
    with pytest.raises(ValueError, match="cannot take inputs of shape"):
        fit(wide, data, "mse", make_optimizer("gd", wide.parameters(), 0.1), steps=3)


@pytest.mark.parametrize("lr", [-0.1, 0.0, float("nan"), float("inf")])
def test_bad_lr_is_rejected_with_its_value(lr):
    with pytest.raises(ValueError, match="lr="):
        make_optimizer("gd", [torch.zeros(1, requires_grad=True)], lr)


def test_after_step_hooks_see_every_updated_model():
    data, model = _digits_setup("cpu")
    seen = []
    opt = make_optimizer("gd", model.parameters(), 0.05)
    fit(model, data, "mse", opt, steps=6, record_every=100,
        after_step=[lambda step, m, o: seen.append((step, m[-1].bias.detach().clone()))])
    assert [s for s, _ in seen] == list(range(6))
    assert torch.equal(seen[-1][1], model[-1].bias.detach())
    assert not torch.equal(seen[0][1], seen[-1][1])


def test_normalised_gd_by_name_takes_steps_of_length_lr():
    data, model = _digits_setup("cpu")
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    opt = make_optimizer("ngd", model.parameters(), 0.05)
    fit(model, data, "mse", opt, steps=1, record_every=1)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert float((after - before).norm()) == pytest.approx(0.05, rel=1e-9)
    with pytest.raises(ValueError, match="takes no momentum"):
        make_optimizer("ngd", model.parameters(), 0.05, momentum=0.9)
