"""eoslab: see how gradient descent really behaves in deep learning.

The package is organised in layers, each a subpackage:

* :mod:`eoslab.core`: configuration, data, models, losses, the optimiser registry, the
  training loop (:func:`fit`), the batched step-size sweep, experiments (:func:`run`) and
  the run store.
* :mod:`eoslab.curvature`: the loss as a pure function of a parameter dict
  (:class:`Objective`), Hessian-vector products, Lanczos, trace, spectral density and the
  notions of sharpness; :func:`track` records them in your own training loop.
* :mod:`eoslab.geometry`: directions, one- and two-dimensional landscape slices, the plane
  through three weight vectors and mode-connecting curves.
* :mod:`eoslab.optimizers`: SAM, normalised GD, Lookahead, weight averaging and schedules.
* :mod:`eoslab.speed`: CPU speed layers that the engines apply behind one switch.
* :mod:`eoslab.ui`: the app lifecycle, live charts and chart builders.
* :mod:`eoslab.chapters`: one package per chapter of the book (presets, science,
  experiment, app).

Example:
    >>> import eoslab
    >>> config = eoslab.TrainConfig(lr=0.1, steps=5)
    >>> config.lr
    0.1
"""

from eoslab.core.config import TrainConfig
from eoslab.core.data import Dataset, load_dataset
from eoslab.core.experiment import run
from eoslab.core.losses import get_loss
from eoslab.core.models import build_model
from eoslab.core.store import RunStore
from eoslab.core.sweep import SweepResult, sweep
from eoslab.core.train import Run, fit
from eoslab.curvature.objective import Objective
from eoslab.curvature.sharpness import SharpnessProbe
from eoslab.curvature.tracker import Tracker, track

__all__ = [
    "Dataset",
    "Objective",
    "Run",
    "RunStore",
    "SharpnessProbe",
    "SweepResult",
    "Tracker",
    "TrainConfig",
    "build_model",
    "fit",
    "get_loss",
    "load_dataset",
    "run",
    "sweep",
    "track",
]
__version__ = "0.1.0"
