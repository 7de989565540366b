"""Chapter 17 presets: schedules (SGDR, cyclical) for full-batch GD with sharpness tracking,
and Smith's range test, on the edge-of-stability setting of chapter 02.

fc-tanh on digits with the Cohen MSE starts with sharpness about 4, so with a peak
eta = 0.4 (2/eta = 5) GD reaches the edge within ~50 steps; cosine decay to eta_min = 0.1
lets the sharpness climb to ~7-12 by the end of a period, so each warm restart throws it
past 2/eta_max (a catapult).
"""

from eoslab.chapters.presets import Preset

NUMBER = "17"
SLUG = "lr_schedules"

_BASE = {
    "dataset": "digits",
    "model": "fc-tanh",
    "width": 200,
    "depth": 2,
    "loss": "mse",
    "optimizer": "gd",
    "lr": 0.4,
    "schedule": "cosine-restarts",
    "low": 0.25,
    "gamma": 0.5,
    "record_every": 10,
    "sharpness_every": 10,
    "range_min": 1e-3,
    "range_max": 10.0,
    "range_batch": None,
}

PRESETS = {
    "quick": Preset(
        NUMBER,
        "quick",
        dict(_BASE, n_train=250, steps=300, period=150, range_steps=60),
        "quick: 250 digits, 300 GD steps, one restart, ~15 s on a CPU",
    ),
    "default": Preset(
        NUMBER,
        "default",
        dict(_BASE, n_train=500, steps=900, period=300, range_steps=100),
        "default: 500 digits, 900 GD steps, two restarts, ~2 min on a CPU",
    ),
    "paper": Preset(
        NUMBER,
        "paper",
        dict(
            _BASE,
            dataset="cifar10-5k",
            n_train=None,
            lr=0.1,
            steps=6000,
            period=2000,
            record_every=20,
            sharpness_every=50,
            range_steps=300,
        ),
        "paper: CIFAR-10 5k (Cohen et al.'s subset), 6000 GD steps, two restarts, ~30 min on a GPU",
        "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
        "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
        "or point EOSLAB_DATA at a folder holding cifar-10-batches-py",
    ),
}
