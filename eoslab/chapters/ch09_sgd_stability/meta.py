"""Presets of chapter 09, which minima SGD can stay at (Wu and Su, ICML 2023, arXiv 2305.17490;
Wu, Ma, E, NeurIPS 2018).
"""

from eoslab.chapters.presets import Preset

NUMBER = "09"
SLUG = "sgd_stability"

# GD (lr_gd, gd_steps) finds an interpolating minimum once per preset; SGD at the slider's
# (lr, batch_size) then starts there.  batch_grid: batch sizes of the stability panel.
_BASE = {"dataset": "teacher", "model": "fc-tanh", "depth": 1, "loss": "mse", "dtype": "float64",
             "model_seed": 0, "lr_gd": 0.5, "lr": 0.5, "sgd_seed": 0}

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(_BASE, n_train=32, width=32, gd_steps=700,
                                          batch_size=4, steps=300, record_every=10,
                                          batch_grid=(1, 2, 4, 8, 16, 32)),
                    "quick: 32 teacher examples, width 32, ~10 s on a CPU"),
    "default": Preset(NUMBER, "default", dict(_BASE, n_train=64, width=64, gd_steps=2000,
                                              batch_size=8, steps=1500, record_every=10,
                                              batch_grid=(1, 2, 4, 8, 16, 32, 64)),
                      "default: 64 teacher examples, width 64, ~20 s on an idle 2-core CPU"),
    "paper": Preset(NUMBER, "paper", dict(_BASE, n_train=256, width=256, gd_steps=5000,
                                          batch_size=16, steps=5000, record_every=20,
                                          batch_grid=(1, 2, 4, 8, 16, 32, 64, 128, 256)),
                    "paper-scale: 256 teacher examples, width 256 (the papers' fully connected "
                    "regression experiments at a size a GPU runs in ~10 min; the exact "
                    "mean-square analysis works on a 256 x 256 Gram matrix)"),
}
