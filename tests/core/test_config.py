import json

import pytest

from eoslab.core.config import TrainConfig


def test_key_is_stable_and_ignores_the_device():
    a = TrainConfig(lr=0.2, device="cpu")
    assert a.key() == TrainConfig(lr=0.2, device="auto").key()
    assert a.key() != TrainConfig(lr=0.21).key()
    assert len(a.key()) == 16


def test_round_trip_through_json():
    config = TrainConfig(lr=0.2, betas=(0.8, 0.99), data_options={"spectrum": [2.0, 1.0]},
                         dataset="quadratic", model="linear")
    back = TrainConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert back == config and back.key() == config.key()


@pytest.mark.parametrize("kwargs,match", [
    ({"lr": float("nan")}, "lr=nan"),
    ({"lr": -1}, "lr=-1"),
    ({"steps": 0}, "steps=0"),
    ({"model": "vgg"}, "model='vgg' is not allowed; allowed: fc-tanh"),
    ({"dataset": "mnist"}, "dataset='mnist' is not allowed; allowed: digits"),
    ({"optimizer": "lbfgs"}, "optimizer='lbfgs'"),
    ({"dtype": "float16"}, "dtype='float16'"),
    ({"batch_size": 0}, "batch_size=0"),
    ({"divergence_factor": 0.5}, "divergence_factor=0.5"),
])
def test_bad_values_name_themselves_and_the_allowed_ones(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match=r"unknown config keys \['learning_rate'\]"):
        TrainConfig.from_dict({"learning_rate": 0.1})
