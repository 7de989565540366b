"""Chapter 18 presets: Adam with L2 vs decoupled weight decay on an (lr, wd) grid, and full
batch Adam at its own edge of stability (preconditioned sharpness near 38/eta).

The grid trains a ReLU net on digits with cross-entropy and minibatches (the test split
measures generalisation); the edge-of-stability run is chapter 02's problem (fc-tanh, MSE,
full batch) with Adam.  ``weight_decay`` is PyTorch's lambda for both optimisers: Adam adds
lambda*w to the gradient, AdamW subtracts lr*lambda*w from the weights.
"""

from ..presets import Preset

NUMBER = "18"
SLUG = "adamw"

_GRID = {
    "grid_dataset": "digits",
    "grid_model": "fc-relu",
    "grid_width": 100,
    "grid_depth": 2,
    "grid_loss": "cross-entropy",
    "grid_batch": 50,
}
_EOS = {
    "dataset": "digits",
    "model": "fc-tanh",
    "width": 200,
    "depth": 2,
    "loss": "mse",
    "lr": 0.004,
    "beta1": 0.9,
    "record_every": 10,
    "sharpness_every": 10,
}


def _merge(**changes) -> dict:
    return {**_GRID, **_EOS, **changes}


PRESETS = {
    "quick": Preset(
        NUMBER,
        "quick",
        _merge(
            grid_n_train=300,
            grid_steps=100,
            grid_lrs=(1e-3, 1e-2),
            grid_wds=(0.0, 0.1, 10.0),
            n_train=250,
            steps=200,
        ),
        "quick: a 2x3 grid of 100 steps and 200 Adam steps (~20 s on a CPU)",
    ),
    "default": Preset(
        NUMBER,
        "default",
        _merge(
            grid_n_train=500,
            grid_steps=300,
            grid_lrs=(1e-3, 3e-3, 1e-2, 3e-2),
            grid_wds=(0.0, 1e-3, 1e-2, 1e-1, 1.0, 10.0),
            n_train=500,
            steps=500,
        ),
        "default: a 4x6 grid per optimiser (48 runs of 300 steps) and 500 full-"
        "batch Adam steps (~2.5 min on a busy 2-core CPU; the grid is stored, "
        "so it trains once)",
    ),
    "paper": Preset(
        NUMBER,
        "paper",
        _merge(
            grid_dataset="cifar10-5k",
            grid_model="resnet-small",
            grid_width=32,
            grid_depth=2,
            grid_n_train=None,
            grid_batch=128,
            grid_steps=4000,
            grid_lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2),
            grid_wds=(0.0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0),
            dataset_eos="cifar10-5k",
            n_train=None,
            steps=3000,
            sharpness_every=50,
            record_every=20,
        ),
        "paper: CIFAR-10 5k, a residual net on a 5x6 grid per optimiser (60 runs "
        "of 4000 steps) and 3000 full-batch Adam steps, ~3 h on a GPU",
        "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
        "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
        "or point EOSLAB_DATA at a folder holding cifar-10-batches-py",
    ),
}
