"""Presets of chapter 11, the invariant-measure view of SGD (Zhang, Li, Sra, Jadbabaie,
ICML 2022, arXiv 2110.06256): SGD at a fixed step size with weight decay, long enough for
the loss to settle, with the weights' movement and distribution measured every
``record_every`` steps and whole snapshots kept every ``snapshot_every`` steps.
"""

from eoslab.chapters.presets import Preset

NUMBER = "11"
SLUG = "invariant_measure"

_BASE = {"dataset": "digits", "model": "fc-tanh", "depth": 2, "width": 32, "loss": "mse",
         "lr": 0.3, "batch_size": 16, "weight_decay": 0.01, "track": 5}

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(_BASE, n_train=200, steps=1500, record_every=100,
                                          snapshot_every=300),
                    "quick: 200 digits, 1500 SGD steps, ~5 s on a CPU"),
    "default": Preset(NUMBER, "default", dict(_BASE, n_train=500, steps=5000,
                                              record_every=200, snapshot_every=1000),
                      "default: 500 digits, 5000 SGD steps, ~20 s on a CPU"),
    "paper": Preset(NUMBER, "paper", dict(_BASE, dataset="cifar10-5k", n_train=None,
                                          model="cnn", lr=0.05, batch_size=128,
                                          weight_decay=5e-4, loss="ce", steps=50000,
                                          record_every=1000, snapshot_every=10000),
                    "paper: CIFAR-10 5k, a small CNN with cross-entropy, 50k SGD steps, "
                    "~30 min on a GPU (estimate)",
                    "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
                    "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
                    "or point EOSLAB_DATA at a folder holding cifar-10-batches-py"),
}
