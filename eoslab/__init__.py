"""eoslab: see how gradient descent really behaves in deep learning.

The package is organised by concept: ``data``, ``models``, ``losses`` and ``optim`` build
the pieces; ``objective`` turns them into a pure function of a parameter dict; ``train``
is the one training loop; ``experiment`` runs a :class:`TrainConfig` end to end and
``store`` keeps the results.
"""

from .config import TrainConfig
from .data import Dataset, load_dataset
from .experiment import run
from .losses import get_loss
from .models import build_model
from .objective import Objective
from .sharpness import SharpnessProbe
from .store import RunStore
from .sweep import SweepResult
from .train import Run, fit

__all__ = ["TrainConfig", "Dataset", "load_dataset", "run", "get_loss", "build_model",
           "Objective", "RunStore", "Run", "fit", "SharpnessProbe", "SweepResult"]
__version__ = "0.1.0"
