"""NetSpec: the data and network it names, its seeds, and its TrainConfig."""

import dataclasses

import pytest
import torch

from eoslab.core.data import load_dataset
from eoslab.core.models import build_model
from eoslab.core.netspec import NetSpec

NET = NetSpec(dataset="moons", n_train=24, model="fc-relu", width=6, depth=1, loss="ce",
              dtype="float64", device="cpu", model_seed=3)


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))


def test_build_is_load_dataset_and_build_model_of_its_fields():
    data, model = NET.build()
    ref = load_dataset("moons", n_train=24, loss="ce", dtype="float64", device="cpu")
    assert torch.equal(data.x_train, ref.x_train) and torch.equal(data.y_train, ref.y_train)
    assert _same(model, build_model("fc-relu", ref.input_shape, ref.n_outputs, width=6,
                                    depth=1, seed=3, dtype="float64", device="cpu"))
    assert next(model.parameters()).dtype == torch.float64


def test_loss_override_changes_the_targets_encoding_only():
    data = NET.load_data(loss="mse")
    assert data.y_train.shape == (24, 2) and NET.load_data().y_train.shape == (24,)


def test_seed_override_gives_an_independent_initialisation():
    data = NET.load_data()
    assert _same(NET.build_model(data), NET.build_model(data, seed=3))
    assert not _same(NET.build_model(data), NET.build_model(data, seed=4))


def test_train_config_carries_the_problem_and_the_run():
    cfg = NET.train_config(lr=0.2, steps=7)
    assert (cfg.dataset, cfg.model, cfg.width, cfg.depth, cfg.loss, cfg.dtype, cfg.device,
            cfg.model_seed, cfg.lr, cfg.steps) == ("moons", "fc-relu", 6, 1, "ce", "float64",
                                                    "cpu", 3, 0.2, 7)
    assert NetSpec(n_train=10, width=4).train_config().device == "auto"
    assert NET.train_config(device="auto").device == "auto"


def test_defaults_are_cohen_et_al_on_digits_and_specs_are_frozen_values():
    net = NetSpec(n_train=100, width=200)
    assert (net.dataset, net.model, net.depth, net.loss, net.dtype, net.device,
            net.model_seed) == ("digits", "fc-tanh", 2, "mse", "float32", None, 0)
    assert hash(net) == hash(NetSpec(n_train=100, width=200))
    with pytest.raises(dataclasses.FrozenInstanceError):
        net.width = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        NetSpec(n_train=100)  # type: ignore[call-arg]  # width is required
