"""Presets of chapter 12, periodic behaviour with BatchNorm and weight decay (Lobacheva,
Kodryan, Chirkova, Malinin, Vetrov, NeurIPS 2021, arXiv 2106.15739).

The period lasts about :math:`c/(\\eta\\lambda)` steps, so the quick and default presets
take :math:`\\eta\\lambda` = 0.02 and 0.01: a period is a few hundred full-batch steps.
"""

from eoslab.chapters.presets import Preset

NUMBER = "12"
SLUG = "bn_wd_periodic"

# scale-invariant MLP: bias-free Linear -> BatchNorm (no affine) -> ReLU, fixed head x10
_BASE = dict(dataset="digits", loss="cross-entropy", depth=2, norm="batch", out_scale=10.0,
             batch_size=None, record_every=10, sharpness_every=10, model_seed=0)

PRESETS = {
    "quick": Preset(NUMBER, "quick", dict(_BASE, n_train=200, width=32, lr=0.1, wd=0.2,
                                          steps=1500),
                    "quick: 200 digits, BN-MLP 32x2, eta*lambda = 0.02, ~10 s on a CPU"),
    "default": Preset(NUMBER, "default", dict(_BASE, n_train=1000, width=64, lr=0.1, wd=0.1,
                                              steps=6000, sharpness_every=20),
                      "default: 1000 digits, BN-MLP 64x2, eta*lambda = 0.01, 6000 GD steps, "
                      "~45 s on a CPU"),
    "paper": Preset(NUMBER, "paper", dict(_BASE, dataset="cifar10-5k", n_train=None,
                                          width=512, depth=3, lr=0.1, wd=0.01,
                                          batch_size=128, steps=40000, record_every=50,
                                          sharpness_every=500),
                    "paper-like: CIFAR-10 5k, scale-invariant BN-MLP 512x3, SGD batch 128, "
                    "eta*lambda = 1e-3 (the paper: ConvNet / ResNet-18 on all of CIFAR-10), "
                    "~15 min on a GPU",
                    "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
                    "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
                    "or point EOSLAB_DATA at a folder holding cifar-10-batches-py"),
}
