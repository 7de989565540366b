"""Presets of chapter 14, mode connectivity (Garipov et al., NeurIPS 2018, arXiv 1802.10026)."""

from eoslab.chapters.presets import Preset

NUMBER = "14"
SLUG = "mode_connectivity"

_BASE = dict(dataset="digits", model="fc-relu", loss="ce", momentum=0.9, batch_size=64,
             record_every=20, path_points=21, kind="bezier",
             weight_decay=5e-3, fge_lr_ratio=5.0)

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(_BASE, n_train=500, width=16, depth=2, lr=0.1,
                                          steps=300, curve_steps=300, grid=13, fge_cycle=40,
                                          fge_cycles=4),
                    "quick: 500 digits, width 16, ~10 s on a CPU"),
    "default": Preset(NUMBER, "default", dict(_BASE, n_train=1000, width=32, depth=2, lr=0.1,
                                              steps=600, curve_steps=800, grid=25,
                                              fge_cycle=60, fge_cycles=6),
                      "default: 1000 digits, width 32, ~5 s on an idle CPU (30 s on a busy one)"),
    "paper": Preset(NUMBER, "paper", dict(_BASE, dataset="cifar10-5k", n_train=None,
                                          model="cnn", width=32, depth=2, lr=0.05,
                                          batch_size=128, steps=8000, curve_steps=8000,
                                          grid=31, fge_cycle=400, fge_cycles=8),
                    "paper: CIFAR-10 5k with a small CNN, ~20 min on a GPU",
                    "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
                    "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
                    "or point EOSLAB_DATA at a folder holding cifar-10-batches-py"),
}
