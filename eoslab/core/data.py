"""Datasets as in-memory tensors.

Every dataset is small enough to live on the device whole, which is what full-batch
gradient descent wants.  Names understood by :func:`load_dataset`:

``digits``
    scikit-learn's ``load_digits`` (1797 8x8 images, ships with scikit-learn, so it
    works offline).  Features are standardised per feature with training statistics.
``cifar10-<n>k``
    the first ``n*1000`` CIFAR-10 training images (or the first ``n_train`` of them),
    divided by 255 and then centred and standardised per feature (pixel and channel) with
    training statistics, as in Cohen et al. 2021.  Needs the ``cifar`` extra
    (torchvision) and the data files.
``quadratic``
    a least-squares problem whose Hessian (for the ``linear`` model and MSE) is exactly
    :math:`A = Q\\,\\mathrm{diag}(\\lambda)\\,Q^\\top` with a chosen spectrum ``spectrum``.
``teacher``
    Gaussian inputs labelled by a random fc-tanh teacher network (regression).
``sine``
    a 1-D regression toy set :math:`y = \\sin(3x)` on :math:`x \\in [-1, 1]`.
``moons`` / ``circles``
    2-D two-class toy sets from scikit-learn's generators.

Targets: classification sets give one-hot targets for MSE (``loss="mse"``) and class
indices for cross-entropy; regression sets give ``(n, 1)`` float targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from eoslab.core.devices import resolve_device, resolve_dtype
from eoslab.core.memory import (
    check_memory,
    estimate_memory,
)
from eoslab.core.options import (
    CIFAR_PATTERN,
    MAX_EXAMPLES,
    check_classes,
    check_data_options,
    check_n_train,
)

__all__ = ["Dataset", "DATASET_NAMES", "load_dataset", "standardise", "images_to_features"]

DATASET_NAMES = ("digits", "cifar10-<n>k", "quadratic", "teacher", "sine", "moons", "circles")


@dataclass
class Dataset:
    """Training and test tensors of one problem, already on their device.

    Attributes:
        name: the name it was loaded by.
        x_train, y_train, x_test, y_test: tensors; the test pair may be empty.
        n_classes: number of classes, or 0 for regression.
        input_shape: shape of one input (without the batch dimension).
        meta: anything else worth keeping (e.g. the spectrum of ``quadratic``).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    input_shape: tuple[int, ...]
    meta: dict = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_outputs(self) -> int:
        """Width of the model's output layer for this problem."""
        return self.n_classes if self.n_classes else int(self.y_train[0].numel())

    @property
    def classification(self) -> bool:
        return self.n_classes > 0

    def to(self, device=None, dtype=None) -> Dataset:
        """A copy on another device / floating dtype (integer labels keep their dtype)."""

        def move(t):
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None)

        return Dataset(self.name, move(self.x_train), move(self.y_train), move(self.x_test),
                       move(self.y_test), self.n_classes, self.input_shape, dict(self.meta))


def standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale each feature by the training mean and standard deviation.

    Features that are constant on the training set are only centred.

    >>> tr, te = standardise(np.array([[0., 1.], [2., 1.]]), np.array([[4., 5.]]))
    >>> tr.tolist(), te.tolist()
    ([[-1.0, 0.0], [1.0, 0.0]], [[3.0, 4.0]])
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def images_to_features(images: np.ndarray) -> np.ndarray:
    """uint8 images ``(n, H, W, C)`` to float features in ``[0, 1]``, channels first.

    >>> images_to_features(np.full((1, 2, 2, 3), 255, dtype=np.uint8)).shape
    (1, 3, 2, 2)
    """
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"expected uint8 images of shape (n, H, W, C), got {images.dtype} "
                         f"{images.shape}")
    return images.astype(np.float64).transpose(0, 3, 1, 2) / 255.0


def _one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(labels), n_classes))
    out[np.arange(len(labels)), labels] = 1.0
    return out


def _select_classes(x, y, classes: int | Sequence[int] | None):
    """Keep the examples of the chosen classes and relabel them 0..k-1."""
    if classes is None:
        return x, y, int(y.max()) + 1
    chosen = list(range(classes)) if isinstance(classes, int) else list(classes)
    all_classes = sorted(set(y.tolist()))
    if not chosen or any(c not in all_classes for c in chosen) or len(set(chosen)) != len(chosen):
        raise ValueError(f"classes={classes!r} is not a set of distinct classes among "
                         f"{all_classes} (or a count up to {len(all_classes)})")
    keep = np.isin(y, chosen)
    remap = {c: i for i, c in enumerate(chosen)}
    return x[keep], np.array([remap[c] for c in y[keep]]), len(chosen)


def _check_count(name: str, value, allowed_max: int, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not (
        minimum <= value <= allowed_max
    ):
        raise ValueError(f"{name}={value!r} is not allowed; use an integer in "
                         f"[{minimum}, {allowed_max}]")
    return int(value)


def _classification(name, x, y, n_train, n_test, classes, seed, loss, default_train):
    x, y, n_classes = _select_classes(x, y, classes)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_train = _check_count("n_train", default_train if n_train is None else n_train, len(x) - 1)
    rest = len(x) - n_train
    n_test = _check_count("n_test", rest if n_test is None else n_test, rest, minimum=0)
    x_tr, x_te = standardise(x[:n_train], x[n_train:n_train + n_test])
    y_tr, y_te = y[:n_train], y[n_train:n_train + n_test]
    return x_tr, x_te, y_tr, y_te, n_classes


def _digits(n_train, n_test, classes, seed, loss, **_):
    from sklearn.datasets import load_digits

    raw = load_digits()
    return _classification("digits", raw.data.astype(np.float64), raw.target, n_train, n_test,
                           classes, seed, loss, default_train=1000) + ((64,),)


def cifar10_arrays(root: str, train: bool = True):
    """Read CIFAR-10 as ``(uint8 images (n,32,32,3), int labels)`` through torchvision.

    Raises:
        ImportError: naming the ``cifar`` extra when torchvision is missing.
        FileNotFoundError: naming ``root`` when the files are not there.
    """
    try:
        from torchvision.datasets import CIFAR10
    except Exception as err:  # ImportError, or a CUDA-only wheel failing on CPU torch
        raise ImportError(
            "cifar10-<n>k needs torchvision: pip install 'eoslab[cifar]' "
            f"(importing torchvision failed: {err})") from err
    try:
        ds = CIFAR10(root=root, train=train, download=False)
    except RuntimeError as err:
        raise FileNotFoundError(
            f"CIFAR-10 files not found under {root!r}; download them once with "
            f"torchvision.datasets.CIFAR10({root!r}, download=True) or set EOSLAB_DATA") from err
    return np.asarray(ds.data), np.asarray(ds.targets)


def _cifar(n_train, n_test, classes, seed, loss, thousands: int, root: str | None = None, **_):
    import os

    root = root or os.environ.get("EOSLAB_DATA", os.path.expanduser("~/.cache/eoslab/data"))
    x_tr_img, y_tr = cifar10_arrays(root, train=True)
    x_te_img, y_te = cifar10_arrays(root, train=False)
    n_train = thousands * 1000 if n_train is None else n_train
    return cifar_features(x_tr_img, y_tr, x_te_img, y_te, n_train, n_test, classes)


def cifar_features(x_tr_img, y_tr, x_te_img, y_te, n_train, n_test, classes):
    """The Cohen et al. preprocessing: first ``n_train`` images, /255, per-feature standardised."""
    x_tr = images_to_features(x_tr_img)
    x_te = images_to_features(x_te_img)
    x_tr, y_tr, n_classes = _select_classes(x_tr, np.asarray(y_tr), classes)
    x_te, y_te, _ = _select_classes(x_te, np.asarray(y_te), classes)
    n_train = _check_count("n_train", n_train, len(x_tr))
    n_test = len(x_te) if n_test is None else _check_count("n_test", n_test, len(x_te), 0)
    shape = x_tr.shape[1:]
    tr, te = standardise(x_tr[:n_train].reshape(n_train, -1), x_te[:n_test].reshape(n_test, -1))
    return (tr.reshape((n_train, *shape)), te.reshape((n_test, *shape)), y_tr[:n_train],
            y_te[:n_test], n_classes, tuple(shape))


def quadratic_features(spectrum: Sequence[float], seed: int = 0, rotate: bool = True):
    """Features ``X`` with :math:`\\frac1d X^\\top X = Q\\,\\mathrm{diag}(\\lambda)\\,Q^\\top`.

    ``X`` is d x d with d = ``len(spectrum)``.  For a linear model :math:`f(x) = w^\\top x`
    and the Cohen MSE, the loss is the quadratic
    :math:`\\tfrac12 (w - w^*)^\\top A (w - w^*)` with :math:`A = \\frac1d X^\\top X`, so its
    Hessian has exactly the spectrum asked for.  Returns ``(X, A, Q)``.

    >>> X, A, Q = quadratic_features([3.0, 1.0], seed=0)
    >>> np.allclose(np.linalg.eigvalsh(A), [1.0, 3.0])
    True
    """
    lam = np.asarray(spectrum, dtype=np.float64)
    if lam.ndim != 1 or lam.size == 0 or not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise ValueError(f"spectrum={spectrum!r} must be a non-empty list of finite "
                         "non-negative eigenvalues")
    d = lam.size
    if rotate:
        q = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))[0]
    else:
        q = np.eye(d)
    x = math.sqrt(d) * np.diag(np.sqrt(lam)) @ q.T
    return x, q @ np.diag(lam) @ q.T, q


def _quadratic(n_train, n_test, classes, seed, loss, spectrum, rotate, **_):
    x, a, q = quadratic_features(spectrum, seed, rotate)
    w_star = np.random.default_rng(seed + 1).standard_normal(len(spectrum))
    y = (x @ w_star)[:, None]
    meta = {"spectrum": [float(v) for v in spectrum], "A": a, "Q": q, "w_star": w_star}
    return x, x[:0], y, y[:0], 0, (len(spectrum),), meta


def _teacher(n_train, n_test, classes, seed, loss, dim, teacher_width, **_):
    rng = np.random.default_rng(seed)
    n_train = 500 if n_train is None else _check_count("n_train", n_train, MAX_EXAMPLES)
    n_test = 500 if n_test is None else _check_count("n_test", n_test, MAX_EXAMPLES, 0)
    x = rng.standard_normal((n_train + n_test, dim))
    w1 = rng.standard_normal((dim, teacher_width)) / math.sqrt(dim)
    w2 = rng.standard_normal((teacher_width, 1)) / math.sqrt(teacher_width)
    y = np.tanh(x @ w1) @ w2
    return x[:n_train], x[n_train:], y[:n_train], y[n_train:], 0, (dim,)


def _sine(n_train, n_test, classes, seed, loss, **_):
    rng = np.random.default_rng(seed)
    n_train = 64 if n_train is None else _check_count("n_train", n_train, MAX_EXAMPLES)
    n_test = 256 if n_test is None else _check_count("n_test", n_test, MAX_EXAMPLES, 0)
    x_tr = rng.uniform(-1, 1, (n_train, 1))
    x_te = np.linspace(-1, 1, n_test)[:, None]
    return x_tr, x_te, np.sin(3 * x_tr), np.sin(3 * x_te), 0, (1,)


def _toy2d(kind):
    def make(n_train, n_test, classes, seed, loss, noise, **_):
        from sklearn.datasets import make_circles, make_moons

        n_train = 200 if n_train is None else _check_count("n_train", n_train, MAX_EXAMPLES)
        n_test = 200 if n_test is None else _check_count("n_test", n_test, MAX_EXAMPLES, 0)
        gen = make_moons if kind == "moons" else make_circles
        extra = {} if kind == "moons" else {"factor": 0.5}
        x, y = gen(n_samples=n_train + n_test, noise=noise, random_state=seed, **extra)
        x_tr, x_te = standardise(x[:n_train], x[n_train:])
        return x_tr, x_te, y[:n_train], y[n_train:], 2, (2,)

    return make


_LOADERS = {"digits": _digits, "quadratic": _quadratic, "teacher": _teacher, "sine": _sine,
            "moons": _toy2d("moons"), "circles": _toy2d("circles")}
_CIFAR = CIFAR_PATTERN


def load_dataset(name: str, *, n_train: int | None = None, n_test: int | None = None,
                 classes: int | Sequence[int] | None = None, seed: int = 0, loss: str = "mse",
                 device=None, dtype="float32", **options) -> Dataset:
    """Load a dataset by name into tensors on ``device``.

    Args:
        name: one of :data:`DATASET_NAMES` (``cifar10-5k`` for ``cifar10-<n>k``).
        n_train: training subset size (the default depends on the dataset).
        n_test: test subset size (the default depends on the dataset).
        classes: keep only these classes (a count ``k`` keeps classes ``0..k-1``).
        seed: seed of the shuffle / generator.
        loss: ``"mse"`` gives one-hot targets for classification, anything else indices.
        device: ``"cpu"``, ``"cuda"``, ``"auto"`` or ``None`` (= auto).
        dtype: floating dtype of inputs and float targets.
        **options: dataset-specific, listed with their ranges in
            :data:`eoslab.core.options.DATA_OPTIONS` (``spectrum``, ``rotate`` for quadratic;
            ``dim``, ``teacher_width`` for teacher; ``noise`` for moons/circles; ``root``
            for CIFAR).

    Raises:
        ValueError: unknown name, an option the dataset does not take (naming the allowed
            ones), bad sizes or a dataset over the memory limit, naming the value and what
            is allowed.
    """
    device, dtype = resolve_device(device), resolve_dtype(dtype)
    if not isinstance(name, str):
        raise ValueError(f"dataset name must be a string, got {name!r}")
    if not isinstance(loss, str):
        raise ValueError(f"loss={loss!r} is not allowed; use a loss name such as 'mse'")
    match = _CIFAR.match(name)
    if not (match or name in _LOADERS):
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASET_NAMES)}")
    given = {**options, **({} if n_test is None else {"n_test": n_test})}
    options = check_data_options(name, given, fill=True)
    n_test = options.pop("n_test", None)
    check_classes(name, classes)
    size = check_n_train(name, n_train, options)
    check_memory({"data": estimate_memory(
        dataset=name, options={**options, "n_test": n_test}, classes=classes, n_train=size,
        model="linear", width=1, depth=1, batch=0, dtype=str(dtype)[6:])["data"]},
        {"n_train": n_train, **given})
    if match:
        loader, options = _cifar, {**options, "thousands": int(match.group(1))}
    else:
        loader = _LOADERS[name]
    out = loader(n_train, n_test, classes, seed, loss, **options)
    x_tr, x_te, y_tr, y_te, n_classes, shape = out[:6]
    meta = out[6] if len(out) > 6 else {}
    if n_classes:
        if loss.startswith("sqrt-mse") or loss == "mse":
            y_tr, y_te = _one_hot(y_tr, n_classes), _one_hot(y_te, n_classes)
            y_dtype = dtype
        else:
            y_dtype = torch.long
    else:
        y_dtype = dtype

    def tensor(a, dt):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dt, device=device)

    return Dataset(name, tensor(x_tr, dtype), tensor(y_tr, y_dtype), tensor(x_te, dtype),
                   tensor(y_te, y_dtype), n_classes, tuple(shape), meta)
