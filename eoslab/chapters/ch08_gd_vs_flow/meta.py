"""Presets of chapter 08, GD vs gradient flow (Elkabetz and Cohen, NeurIPS 2021, arXiv 2107.06608)."""

from eoslab.chapters.presets import Preset

NUMBER = "08"
SLUG = "gd_vs_flow"

# horizon: flow time integrated (GD at eta takes horizon / eta steps); points: records per run
_BASE = {"dataset": "digits", "model": "fc-tanh", "depth": 2, "loss": "mse", "model_seed": 0,
             "dtype": "float32", "lr_ratios": (1.0, 0.5, 0.25), "points": 40, "sharpness_points": 25}

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(_BASE, n_train=100, width=50, lr=0.5, horizon=60.0,
                                          lr_ratios=(1.0, 0.5), points=30,
                                          sharpness_points=13),
                    "quick: 100 digits, width 50, flow to t = 60, two step sizes, ~10 s on a CPU"),
    "default": Preset(NUMBER, "default", dict(_BASE, n_train=250, width=100, lr=0.4,
                                              horizon=100.0),
                      "default: 250 digits, width 100, flow to t = 100, three step sizes, "
                      "~20 s on an idle 2-core CPU, ~1 min on a busy one"),
    "paper": Preset(NUMBER, "paper", dict(_BASE, dataset="cifar10-5k", n_train=None,
                                          width=200, lr=2 / 30, horizon=100.0,
                                          lr_ratios=(1.0, 0.5, 0.25), points=50,
                                          sharpness_points=40),
                    "paper: CIFAR-10 5k, fc-tanh 200x2 (the Cohen et al. setting in which the "
                    "paper compares GD with the flow), ~30 min on a GPU",
                    "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
                    "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
                    "or point EOSLAB_DATA at a folder holding cifar-10-batches-py"),
}
