"""Presets of chapter 16, SAM (Foret et al., ICLR 2021, arXiv 2010.01412; Andriushchenko and
Flammarion, ICML 2022, arXiv 2206.06232; Long and Bartlett, arXiv 2309.12488).
"""

from eoslab.chapters.presets import Preset

NUMBER = "16"
SLUG = "sam"

_BASE = dict(dataset="digits", model="fc-tanh", loss="mse", depth=2, record_every=10,
             rho_ratios=(0.0, 0.5, 1.0), lr_m=0.2, batch_m=64)

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(_BASE, n_train=200, width=50, lr=0.4, rho=0.05,
                                          rho_ratios=(0.0, 1.0), steps=200, sharpness_every=20,
                                          rho_m=0.1, m_values=(0, 32, 8), batch_m=32,
                                          steps_m=100),
                    "quick: 200 digits, GD vs one SAM radius, ~15 s on a CPU"),
    "default": Preset(NUMBER, "default", dict(_BASE, n_train=300, width=100, lr=0.4, rho=0.1,
                                              steps=600, sharpness_every=20, rho_m=0.1,
                                              m_values=(0, 64, 16, 8), steps_m=400),
                      "default: 300 digits, 3 radii, m = 64, 16, 8, ~20 s idle CPU (4 min busy)"),
    "paper": Preset(NUMBER, "paper", dict(_BASE, dataset="cifar10-5k", n_train=None,
                                          width=200, lr=2 / 30, rho=0.05, steps=5000,
                                          sharpness_every=50, rho_m=0.05,
                                          m_values=(0, 128, 32, 8), batch_m=128, lr_m=0.05,
                                          steps_m=5000),
                    "paper: CIFAR-10 5k (Cohen et al.'s EoS setting), ~30 min on a GPU",
                    "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
                    "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
                    "or point EOSLAB_DATA at a folder holding cifar-10-batches-py"),
}
