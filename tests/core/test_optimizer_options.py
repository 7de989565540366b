"""SAM and label-noise SGD as TrainConfig choices: validation, keys, and their maths."""

import hashlib
import json

import pytest
import torch

import eoslab
from eoslab.core.config import TrainConfig
from eoslab.core.optim import make_optimizer
from eoslab.optimizers.label_noise import LabelNoiseSGD
from eoslab.optimizers.sam import SAM


def _old_key(config: TrainConfig) -> str:
    """The key formula before ``optimizer_options`` existed (what stored runs are named by)."""
    values = {k: v for k, v in config.to_dict().items()
              if k not in ("device", "record_every_seconds", "optimizer_options")}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()
                          ).hexdigest()[:16]


@pytest.mark.parametrize("config", [
    TrainConfig(),
    TrainConfig(optimizer="adam", lr=0.001, sharpness_every=20),
    TrainConfig(dataset="moons", n_train=64, model="fc-relu", width=16, depth=2,
                optimizer="momentum", momentum=0.9),
])
def test_keys_of_configs_without_optimizer_options_are_unchanged(config):
    assert config.key() == _old_key(config)
    # pinned: the key the store used for the default config before this field existed
    assert TrainConfig().key() == "2f179c6bc6db1f8a"


def test_optimizer_options_enter_the_key_when_given():
    a = TrainConfig(optimizer="sam", optimizer_options={"rho": 0.05})
    b = TrainConfig(optimizer="sam", optimizer_options={"rho": 0.1})
    assert a.key() != b.key() != TrainConfig(optimizer="sam").key()


@pytest.mark.parametrize("kwargs, words", [
    ({"optimizer": "sam", "optimizer_options": {"rho": -1}}, ["rho=-1", "[0, 1e+06]"]),
    ({"optimizer": "sam", "optimizer_options": {"sigma": 0.1}}, ["'sigma'", "allowed: rho"]),
    ({"optimizer": "label-noise", "optimizer_options": {"sigma": float("nan")}},
     ["sigma=nan", "finite number"]),
    ({"optimizer": "gd", "optimizer_options": {"rho": 0.1}}, ["'rho'", "allowed: none"]),
    ({"optimizer": "label-noise", "loss": "ce"}, ["loss='ce'", "'mse'"]),
    ({"optimizer": "sam", "optimizer_options": [0.1]}, ["optimizer_options=", "a dict"]),
])
def test_bad_optimizer_options_are_refused_by_name(kwargs, words):
    with pytest.raises(ValueError) as err:
        TrainConfig(**kwargs)
    for word in words:
        assert word in str(err.value)


def test_sam_step_on_a_quadratic_matches_the_formula():
    # L = 1/2 w^T A w: SAM moves w -> w - eta A (w + rho A w / |A w|)
    a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = make_optimizer("sam", [w], 0.1, options={"rho": 0.3})
    assert isinstance(opt, SAM)

    def closure():
        opt.zero_grad()
        loss = 0.5 * w @ a @ w
        loss.backward()
        return loss

    w0 = w.detach().clone()
    closure()
    opt.step(closure)
    g = a @ w0
    expected = w0 - 0.1 * (a @ (w0 + 0.3 * g / g.norm()))
    torch.testing.assert_close(w.detach(), expected, rtol=0, atol=1e-12)


def test_sam_with_rho_zero_trains_exactly_as_gd_through_run():
    base = dict(dataset="moons", n_train=32, model="fc-tanh", width=8, depth=1, lr=0.2,
                steps=30, dtype="float64")
    gd = eoslab.run(TrainConfig(**base), store=False)
    sam0 = eoslab.run(TrainConfig(**base, optimizer="sam", optimizer_options={"rho": 0.0}),
                      store=False)
    sam = eoslab.run(TrainConfig(**base, optimizer="sam", optimizer_options={"rho": 0.2}),
                     store=False)
    assert sam0.status == sam.status == "finished"
    assert sam0.column("loss") == pytest.approx(gd.column("loss"), rel=1e-12)
    assert sam.column("loss")[-1] != pytest.approx(gd.column("loss")[-1], rel=1e-6)


class _Recorder:
    """A batch closure that keeps the targets it is called with."""

    def __init__(self, x, y, w):
        self.x, self.y, self.w, self.seen = x, y, w, []

    def __call__(self, x=None, y=None):
        self.seen.append(y)
        self.w.grad = torch.zeros_like(self.w)
        return torch.zeros(())


def test_label_noise_changes_the_targets_with_the_stated_std():
    w = torch.zeros(1, requires_grad=True)
    opt = make_optimizer("label-noise", [w], 0.1, options={"sigma": 0.3}, seed=4)
    assert isinstance(opt, LabelNoiseSGD)
    y = torch.randn(20000, 2, dtype=torch.float64)
    closure = _Recorder(None, y, w)
    opt.step(closure)
    opt.step(closure)
    first, second = (seen - y for seen in closure.seen)
    # std of 40000 N(0, 0.3^2) draws: standard error 0.3/sqrt(80000) ~ 0.001; margin 2 %
    assert float(first.std()) == pytest.approx(0.3, rel=0.02)
    assert abs(float(first.mean())) < 0.01
    assert not torch.equal(first, second)  # fresh noise each step


def test_label_noise_sgd_trains_through_run_and_is_stored_once(tmp_path):
    from eoslab.core.store import RunStore

    store = RunStore(tmp_path)
    config = TrainConfig(dataset="moons", n_train=32, model="fc-tanh", width=8, depth=1,
                         optimizer="label-noise", optimizer_options={"sigma": 0.2}, lr=0.1,
                         steps=20, loss="mse")
    first = eoslab.run(config, store=store)
    again = eoslab.run(config, store=store)
    assert first.status == "finished" and again.extra.get("from_store")
    assert again.column("loss") == first.column("loss")
