"""Presets of chapter 13, normalisation and sharpness (Lyu, Li, Arora, NeurIPS 2022, arXiv
2206.07085; Santurkar, Tsipras, Ilyas, Madry, NeurIPS 2018, arXiv 1805.11604).

Three full-batch GD runs at one step size: the BatchNorm MLP with weight decay, the same
without weight decay, and the same MLP without BatchNorm (Kaiming init, so the two start
with signals of the same size).
"""

from eoslab.chapters.presets import Preset

NUMBER = "13"
SLUG = "normalization_sharpness"

_BASE = dict(dataset="digits", loss="mse", depth=2, out_scale=1.0, init="kaiming",
             model_seed=0, lr=0.5, wd=0.01, multiples=(0.25, 0.5, 1.0, 2.0, 4.0),
             record_every=10)

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(_BASE, n_train=200, width=32, steps=500,
                                          sharpness_every=50, smooth_every=20),
                    "quick: 200 digits, MLP 32x2, 3 runs of 500 GD steps, ~15 s on a CPU"),
    "default": Preset(NUMBER, "default", dict(_BASE, n_train=300, width=64, steps=1500,
                                              sharpness_every=50, smooth_every=20),
                      "default: 300 digits, MLP 64x2, 3 runs of 1500 GD steps, ~1 min on a "
                      "CPU"),
    "paper": Preset(NUMBER, "paper", dict(_BASE, dataset="cifar10-5k", n_train=None,
                                          width=512, depth=3, lr=0.2, steps=10000,
                                          sharpness_every=200, smooth_every=100,
                                          record_every=50),
                    "paper-like: CIFAR-10 5k, MLP 512x3 with and without BatchNorm, "
                    "10k full-batch GD steps each (Lyu et al. and Santurkar et al. use "
                    "ResNets / VGG on CIFAR-10), ~30 min on a GPU",
                    "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
                    "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
                    "or point EOSLAB_DATA at a folder holding cifar-10-batches-py"),
}
