"""Presets of chapter 04, unstable convergence (Ahn, Zhang, Sra, ICML 2022, arXiv 2204.01050)."""

from eoslab.chapters.presets import Preset

NUMBER = "04"
SLUG = "unstable_convergence"

_BASE = dict(dataset="digits", model="fc-tanh", depth=2, loss="mse")

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(_BASE, n_train=100, width=50, lr=0.6, steps=300,
                                          record_every=5, probe_every=5),
                    "quick: 100 digits, width 50, ~15 s on a CPU"),
    "default": Preset(NUMBER, "default", dict(_BASE, n_train=250, width=100, lr=0.4,
                                              steps=800, record_every=4, probe_every=4),
                      "default: 250 digits, width 100, ~2 min on a CPU"),
    "paper": Preset(NUMBER, "paper", dict(_BASE, dataset="cifar10-5k", n_train=None, width=200,
                                          lr=2 / 30, steps=5000, record_every=10,
                                          probe_every=10),
                    "paper: CIFAR-10 5k, fc-tanh 200x2 (Cohen et al.'s setting, which the "
                    "paper reuses), ~15 min on a GPU",
                    "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
                    "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
                    "or point EOSLAB_DATA at a folder holding cifar-10-batches-py"),
}
