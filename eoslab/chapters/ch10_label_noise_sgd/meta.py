"""Presets of chapter 10, label-noise SGD (Damian, Ma, Lee, NeurIPS 2021, arXiv 2106.06530).

``uv_*``: the exact product model :math:`f = uv` fitted to :math:`y = 1`, started at
``uv_starts`` (points on the hyperbola :math:`uv = 1`, from balanced to 6:1 unbalanced).
The net: ``warmup`` steps of plain SGD to reach the zero-loss manifold, then ``steps``
more steps twice from the same point, with and without label noise.
"""

from eoslab.chapters.presets import Preset

NUMBER = "10"
SLUG = "label_noise_sgd"

_STARTS = ((2.5, 0.4), (2.0, 0.5), (1.5, 1 / 1.5), (0.4, 2.5), (0.5, 2.0), (-2.5, -0.4),
           (-0.5, -2.0))
_BASE = {"dataset": "digits", "model": "fc-tanh", "depth": 2, "loss": "mse", "lr": 0.2,
         "sigma": 0.3, "uv_target": 1.0, "uv_starts": _STARTS, "uv_record": 25, "trace_m": 30}

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(_BASE, uv_steps=3000, n_train=100, width=32,
                                          batch_size=10, warmup=300, steps=600,
                                          record_every=100, trace_m=21),
                    "quick: f = uv and 100 digits, ~10 s on a CPU"),
    "default": Preset(NUMBER, "default", dict(_BASE, uv_steps=6000, n_train=200, width=50,
                                              batch_size=20, warmup=2000, steps=4000,
                                              record_every=200),
                      "default: f = uv and 200 digits, 2000 + 2 x 4000 SGD steps, "
                      "~40 s on a busy 2-core CPU"),
    "paper": Preset(NUMBER, "paper", dict(_BASE, uv_steps=20000, dataset="cifar10-5k",
                                          n_train=None, model="cnn", width=32,
                                          lr=0.05, sigma=0.2, batch_size=128, warmup=5000,
                                          steps=20000, record_every=1000, trace_m=60),
                    "paper: CIFAR-10 5k, a small CNN, 5k + 2 x 20k SGD steps, "
                    "~1 h on a GPU (estimate)",
                    "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
                    "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
                    "or point EOSLAB_DATA at a folder holding cifar-10-batches-py"),
}
