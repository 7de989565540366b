"""Presets of chapter 05, normalised GD and GD on sqrt(L) (Arora, Li, Panigrahi, ICML 2022)."""

from eoslab.chapters.presets import Preset

NUMBER = "05"
SLUG = "normalized_gd"

_BASE = dict(dataset="digits", model="fc-tanh", depth=2, loss="mse", record_every=10,
             sharpness_every=50)

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(_BASE, n_train=100, width=50, lr=0.1, sqrt_lr=0.05,
                                          steps=600, methods=("ngd",)),
                    "quick: 100 digits, normalised GD only, ~15 s on a CPU"),
    "default": Preset(NUMBER, "default", dict(_BASE, n_train=100, width=100, lr=0.1,
                                              sqrt_lr=0.05, steps=2000,
                                              methods=("ngd", "sqrt")),
                      "default: 100 digits, normalised GD and GD on sqrt(L), ~2 min on a CPU"),
    "paper": Preset(NUMBER, "paper", dict(_BASE, dataset="cifar10-5k", n_train=None, width=200,
                                          lr=0.05, sqrt_lr=0.02, steps=20000,
                                          sharpness_every=200, record_every=50,
                                          methods=("ngd", "sqrt")),
                    "paper: CIFAR-10 5k, fc-tanh 200x2, NGD and GD on sqrt(L), ~30 min on a GPU",
                    "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
                    "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
                    "or point EOSLAB_DATA at a folder holding cifar-10-batches-py"),
}
