import numpy as np
import pytest
import torch

from eoslab.core.data import cifar_features, load_dataset, quadratic_features


def test_digits_default_is_standardised_with_one_hot_targets(device):
    data = load_dataset("digits", device=device)
    assert data.x_train.shape == (1000, 64) and data.x_test.shape == (797, 64)
    assert data.x_train.device.type == device.type
    mean = data.x_train.mean(0)
    std = data.x_train.std(0, unbiased=False)
    varying = std > 0
    assert torch.allclose(mean, torch.zeros_like(mean), atol=1e-5)
    assert torch.allclose(std[varying], torch.ones_like(std[varying]), atol=1e-4)
    assert torch.equal(data.y_train.sum(1), torch.ones(1000, device=device))
    assert data.n_classes == 10 and data.n_outputs == 10


def test_digits_subsets_classes_seed_and_ce_targets():
    a = load_dataset("digits", n_train=100, n_test=50, classes=[3, 5], seed=1, loss="ce",
                     dtype="float64")
    assert a.x_train.shape == (100, 64) and a.x_test.shape == (50, 64)
    assert a.y_train.dtype == torch.long and set(a.y_train.tolist()) == {0, 1}
    assert a.x_train.dtype == torch.float64 and a.n_classes == 2
    b = load_dataset("digits", n_train=100, n_test=50, classes=[3, 5], seed=1, loss="ce")
    c = load_dataset("digits", n_train=100, n_test=50, classes=[3, 5], seed=2, loss="ce")
    assert torch.equal(a.y_train, b.y_train) and not torch.equal(a.y_train, c.y_train)


def test_quadratic_dataset_has_the_chosen_hessian():
    spectrum = [5.0, 2.0, 0.5]
    data = load_dataset("quadratic", spectrum=spectrum, dtype="float64")
    x = data.x_train
    hessian = x.T @ x / x.shape[0]  # MSE (Cohen convention) of a linear model
    assert np.allclose(sorted(torch.linalg.eigvalsh(hessian).tolist()), sorted(spectrum))
    assert np.allclose(hessian.numpy(), data.meta["A"])


def test_quadratic_features_reject_bad_spectrum():
    with pytest.raises(ValueError, match="spectrum"):
        quadratic_features([1.0, float("nan")])


@pytest.mark.parametrize("name,shape,classes", [("teacher", (20,), 0), ("sine", (1,), 0),
                                                ("moons", (2,), 2), ("circles", (2,), 2)])
def test_synthetic_sets(name, shape, classes):
    data = load_dataset(name, n_train=32, n_test=8)
    assert data.input_shape == shape and data.n_classes == classes
    assert data.x_train.shape == (32, *shape) and data.x_test.shape[0] == 8
    assert torch.isfinite(data.y_train).all()


def test_cifar_preprocessing_on_synthetic_images():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (30, 4, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 30)
    tr, te, y_tr, y_te, n_classes, shape = cifar_features(imgs, labels, imgs[:5], labels[:5],
                                                         20, None, None)
    assert shape == (3, 4, 4) and tr.shape == (20, 3, 4, 4) and te.shape == (5, 3, 4, 4)
    flat = imgs[:20].astype(np.float64).transpose(0, 3, 1, 2).reshape(20, -1) / 255
    expected = (flat - flat.mean(0)) / flat.std(0)
    assert np.allclose(tr.reshape(20, -1), expected)
    assert n_classes == int(labels.max()) + 1 and (y_tr == labels[:20]).all()


def test_cifar_without_torchvision_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("torchvision"):
            raise ImportError("no torchvision here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"eoslab\[cifar\]"):
        load_dataset("cifar10-5k")


@pytest.mark.parametrize("kwargs,match", [
    ({"name": "mnist"}, "unknown dataset 'mnist'; allowed: digits"),
    ({"name": "digits", "n_train": 0}, "n_train=0"),
    ({"name": "digits", "n_train": 5000}, "n_train=5000"),
    ({"name": "digits", "classes": [11]}, "classes=\\[11\\]"),
    ({"name": "digits", "dtype": "float16"}, "dtype='float16'"),
    ({"name": "digits", "device": "tpu"}, "device='tpu'"),
])
def test_bad_inputs_name_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(**kwargs)
