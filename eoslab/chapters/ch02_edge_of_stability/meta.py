"""Chapter 02 presets: the edge of stability (Cohen et al., ICLR 2021, arXiv 2103.00065)."""

from eoslab.chapters.presets import Preset

NUMBER = "02"
SLUG = "edge_of_stability"

_EOS_BASE = dict(dataset="digits", model="fc-tanh", loss="mse", optimizer="gd",
                 width=200, depth=2, momentum=0.0)

PRESETS = {

    "quick": Preset("02", "quick", dict(_EOS_BASE, n_train=200, lr=0.4,
                                        lr_ratios=(1.0,), steps=300, record_every=10,
                                        sharpness_every=20),
                    "quick: 200 digits, one step size, ~10 s on a CPU"),
    "default": Preset("02", "default", dict(_EOS_BASE, n_train=1000, lr=0.4,
                                            lr_ratios=(1.0, 2 / 3, 0.5), steps=800,
                                            record_every=10, sharpness_every=20),
                      "default: 1000 digits, three step sizes, ~2 min on a CPU"),
    "paper": Preset("02", "paper", dict(_EOS_BASE, dataset="cifar10-5k", n_train=None,
                                        lr=2 / 30, lr_ratios=(1.0, 2 / 3, 1 / 3),
                                        steps=10000, record_every=20, sharpness_every=50),
                    "paper: CIFAR-10 5k, 3 x 10k steps, ~1 min per step size on a GPU "
                    "(estimate), ~1 h on a CPU",
                    "torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
                    "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) "
                    "once, or point EOSLAB_DATA at a folder holding cifar-10-batches-py"),
}
