"""Presets of chapter 03, self-stabilisation (Damian, Nichani, Lee, ICLR 2023, arXiv 2209.15594)."""

from eoslab.chapters.presets import Preset

NUMBER = "03"
SLUG = "self_stabilization"

# projection accuracy: S(theta_dagger) <= 2/eta within rtol; Lanczos capped for speed
_BASE = dict(dataset="digits", model="fc-tanh", depth=2, loss="mse", eig_tol=1e-3,
             eig_max_iter=30, rtol=1e-2, newton_steps=4)

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(_BASE, n_train=100, width=50, lr=0.66, steps=84,
                                          record_every=2, probe_every=2),
                    "quick: 100 digits, width 50, one cycle, ~1-2 min on a CPU"),
    "default": Preset(NUMBER, "default", dict(_BASE, n_train=100, width=50, lr=0.66,
                                              steps=150, record_every=1, probe_every=1),
                      "default: 100 digits, width 50, the first cycle and the hover after "
                      "it, ~3-6 min on a CPU"),
    "paper": Preset(NUMBER, "paper", dict(_BASE, dataset="cifar10-5k", n_train=None,
                                          width=200, lr=2 / 30, steps=3000, record_every=1,
                                          probe_every=1, eig_max_iter=50),
                    "paper: CIFAR-10 5k, fc-tanh 200x2 (Cohen et al.'s setting, as in the "
                    "paper's figures), ~1 h on a GPU (a projection per step)",
                    "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
                    "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
                    "or point EOSLAB_DATA at a folder holding cifar-10-batches-py"),
}
