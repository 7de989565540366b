"""Chapter 18 presets: Adam with L2 vs decoupled weight decay on an (lr, lambda) grid, and
full-batch Adam at its own edge of stability (preconditioned sharpness near 38/eta).

The grid follows the paper's recipe at a CPU's scale: a scale-invariant net (``si-mlp``:
bias-free layers each followed by BatchNorm and a fixed last layer, the analogue of the
paper's BatchNorm ResNets), cosine annealing of the step-size multiplier eta_t to 0, and the
paper's convention for the decoupled decay (``grid_decay="paper"``: AdamW shrinks the
weights by eta_t * lambda per step, independent of the learning rate; Adam + L2 adds
lambda * w to the gradient).  Each optimiser has its own lambda axis (half decades).
Measured on the default preset (test loss, 2 seeds averaged): the best lambda of Adam + L2
moves over about 2 decades across the four learning rates, AdamW's over half a decade.
The edge-of-stability run is chapter 02's problem (fc-tanh, MSE, full batch) with Adam.
"""

from eoslab.chapters.presets import Preset

NUMBER = "18"
SLUG = "adamw"

_GRID = {
    "grid_dataset": "digits",
    "grid_model": "si-mlp",
    "grid_width": 100,
    "grid_depth": 2,
    "grid_loss": "cross-entropy",
    "grid_batch": 50,
    "grid_schedule": "cosine",
    "grid_decay": "paper",
    "grid_seeds": (0,),
}


def _half_decades(low: int, high: int) -> tuple:
    """10**(k/2) for k = low..high: the lambda axis, two columns per decade."""
    return tuple(float(f"{10 ** (k / 2):.1g}") for k in range(low, high + 1))
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
            grid_steps=250,
            grid_lrs=(1e-3, 3e-2),
            grid_wds={"adam": _half_decades(-6, 0), "adamw": _half_decades(-5, -2)},
            n_train=250,
            steps=200,
        ),
        "quick: 2 lrs x 7 (Adam + L2) and 4 (AdamW) lambdas (22 runs of 250 steps) "
        "and 200 full-batch Adam steps (~20 s on a CPU)",
    ),
    "default": Preset(
        NUMBER,
        "default",
        _merge(
            grid_n_train=500,
            grid_steps=300,
            grid_lrs=(1e-3, 3e-3, 1e-2, 3e-2),
            grid_wds={"adam": _half_decades(-8, 0), "adamw": _half_decades(-8, -1)},
            grid_seeds=(0, 1),
            n_train=500,
            steps=500,
        ),
        "default: 4 lrs x 9 (Adam + L2) and 8 (AdamW) lambdas, 2 seeds (136 runs "
        "of 300 steps) and 500 full-batch Adam steps (~2 min on a busy 2-core CPU; "
        "the grid is stored, so it trains once)",
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
            grid_wds={"adam": _half_decades(-10, -1), "adamw": _half_decades(-10, -3)},
            dataset_eos="cifar10-5k",
            n_train=None,
            steps=3000,
            sharpness_every=50,
            record_every=20,
        ),
        "paper: CIFAR-10 5k, a BatchNorm residual net, 5 lrs x 10 (Adam + L2) and "
        "8 (AdamW) lambdas (90 runs of 4000 cosine-annealed steps) and 3000 full-"
        "batch Adam steps, ~4 h on a GPU",
        "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
        "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
        "or point EOSLAB_DATA at a folder holding cifar-10-batches-py",
    ),
}
