"""Presets of chapter 15, SWA (Izmailov et al., UAI 2018, arXiv 1803.05407)."""

from eoslab.chapters.presets import Preset

NUMBER = "15"
SLUG = "swa"

_BASE = dict(dataset="digits", model="fc-relu", loss="mse", momentum=0.9, weight_decay=5e-3,
             batch_size=32, record_every=20, slice_radius=1.0, slice_points=21,
             width_rise=0.05, margin=0.3)

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(_BASE, n_train=300, width=32, depth=2, lr=0.3,
                                          steps=800, swa_start=400, swa_every=20, grid=11),
                    "quick: 300 digits, 800 SGD steps, ~10 s on a CPU"),
    "default": Preset(NUMBER, "default", dict(_BASE, n_train=500, width=32, depth=2, lr=0.3,
                                              steps=2000, swa_start=1000, swa_every=20,
                                              grid=21),
                      "default: 500 digits, 2000 SGD steps, ~3 s on an idle CPU (40 s busy)"),
    "paper": Preset(NUMBER, "paper", dict(_BASE, dataset="cifar10-5k", n_train=None,
                                          model="cnn", width=32, depth=2, lr=0.05,
                                          batch_size=128, steps=20000, swa_start=12000,
                                          swa_every=200, grid=31, loss="ce"),
                    "paper: CIFAR-10 5k with a small CNN, ~20 min on a GPU",
                    "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
                    "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
                    "or point EOSLAB_DATA at a folder holding cifar-10-batches-py"),
}
