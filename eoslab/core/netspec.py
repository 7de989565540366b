"""The data and the network of a run, named in one frozen dataclass.

Most chapters train one network on one data set; their typed presets name that problem with
a :class:`NetSpec` field (usually ``net``) and keep their own run knobs (step sizes, steps,
batch size, probes' cadence) in fields of their own.  A :class:`NetSpec` is a value: frozen,
hashable (so it can key a cache) and JSON-ready through the preset's ``values``.

It turns into tensors and a module with:

* :meth:`NetSpec.load_data`: :func:`eoslab.core.data.load_dataset` of ``dataset``,
  ``n_train``, ``loss`` (the targets' encoding), ``dtype`` and ``device``;
* :meth:`NetSpec.build_model`: :func:`eoslab.core.models.build_model` of ``model``,
  ``width``, ``depth`` and ``model_seed`` for those data, on their device and dtype;
* :meth:`NetSpec.build`: both, ``(data, model)``;
* :meth:`NetSpec.train_config`: a :class:`~eoslab.core.config.TrainConfig` of the same
  problem with the run's own fields added, for the chapters that train through
  :func:`eoslab.core.experiment.run` or :func:`eoslab.core.sweep.sweep`.

The defaults are Cohen et al.'s edge-of-stability network (arXiv 2103.00065) at the scale
of the offline ``digits`` data: fc-tanh with two hidden layers, the MSE, float32.

Example:
    >>> net = NetSpec(dataset="moons", n_train=16, width=8, depth=1)
    >>> data, model = net.build()
    >>> data.x_train.shape[0], sum(p.numel() for p in model.parameters())
    (16, 42)
    >>> net.train_config(lr=0.1, steps=4).width
    8
    >>> net.replace(model="fc-relu").model
    'fc-relu'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from eoslab.core.config import TrainConfig
from eoslab.core.data import Dataset, load_dataset
from eoslab.core.models import build_model

__all__ = ["NetSpec"]


@dataclass(frozen=True, kw_only=True)
class NetSpec:
    """The data and the network of a chapter's run (a field of its typed preset).

    Attributes:
        dataset: a name of :data:`eoslab.core.data.DATASET_NAMES` (``"cifar10-5k"`` for
            Cohen et al.'s 5000-image CIFAR-10 subset).
        n_train: training examples; ``None`` keeps the data set's default (all of a
            CIFAR-10 subset).
        model: a name of :data:`eoslab.core.models.MODEL_NAMES` (e.g. ``"fc-tanh"``,
            ``"cnn"``, ``"si-mlp"``).
        width, depth: hidden width (channels for the convolutional nets) and number of
            hidden layers (blocks).
        loss: the training loss, a name of :data:`eoslab.core.losses.LOSS_NAMES`; it also
            fixes the targets' encoding (one-hot for ``"mse"``, class indices otherwise).
        dtype: floating dtype of data and model, ``"float32"`` or ``"float64"``.
        device: ``"cpu"``, ``"cuda"``, or ``None``/``"auto"`` for CUDA when present.
        model_seed: seed of the initialisation (it depends on nothing else).
    """

    dataset: str = "digits"
    n_train: int | None
    model: str = "fc-tanh"
    width: int
    depth: int = 2
    loss: str = "mse"
    dtype: str = "float32"
    device: str | None = None
    model_seed: int = 0

    def replace(self, **changes) -> NetSpec:
        """A copy with some fields changed (e.g. ``net.replace(model="fc-relu")``)."""
        return dataclasses.replace(self, **changes)

    def load_data(self, *, loss: str | None = None) -> Dataset:
        """The data on ``device``, targets encoded for ``loss`` (default :attr:`loss`)."""
        return load_dataset(self.dataset, n_train=self.n_train, loss=loss or self.loss,
                            dtype=self.dtype, device=self.device)

    def build_model(self, data: Dataset, *, seed: int | None = None) -> nn.Module:
        """A freshly initialised :attr:`model` for ``data``, on the data's device and dtype.

        ``seed`` replaces :attr:`model_seed` (e.g. the second of two independent minima).
        """
        return build_model(self.model, data.input_shape, data.n_outputs, width=self.width,
                           depth=self.depth,
                           seed=self.model_seed if seed is None else int(seed),
                           device=data.x_train.device, dtype=data.x_train.dtype)

    def build(self, *, loss: str | None = None) -> tuple[Dataset, nn.Module]:
        """``(data, model)``: :meth:`load_data` (targets for ``loss``) and :meth:`build_model`."""
        data = self.load_data(loss=loss)
        return data, self.build_model(data)

    def train_config(self, **run) -> TrainConfig:
        """A :class:`~eoslab.core.config.TrainConfig` of this problem and the fields ``run``.

        ``run`` holds the run's own fields (``lr``, ``steps``, ``optimizer``, ...); it may
        also replace a field of the problem (e.g. ``device``).
        """
        problem = {"dataset": self.dataset, "n_train": self.n_train, "model": self.model,
                   "width": self.width, "depth": self.depth, "loss": self.loss,
                   "dtype": self.dtype, "device": self.device or "auto",
                   "model_seed": self.model_seed}
        return TrainConfig(**{**problem, **run})
