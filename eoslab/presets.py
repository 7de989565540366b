"""The three scales of every chapter: ``quick``, ``default`` and ``paper``.

``quick`` is what the test suite runs (``EOSLAB_QUICK=1``): seconds on a laptop CPU.
``default`` is what a reader gets on a laptop or Binder CPU: under a couple of minutes
of live, non-blocking training.  ``paper`` is the paper's own setting where it can be
reached, labelled with its expected time and what it needs (e.g. CIFAR-10 files and a GPU).

A chapter asks :func:`preset_for` for its starting preset and offers the other two in a
dropdown.  Chapters are named by number (``"01"``), slug (``"quadratic_stability"``) or
notebook stem (``"01_quadratic_stability"``).

Example:
    >>> get_preset("01", "quick").name
    'quick'
    >>> get_preset("quadratic_stability", "default")["eigenvalues"]
    (2.0, 0.5)
    >>> get_preset("01", "huge")
    Traceback (most recent call last):
    ...
    ValueError: preset 'huge' is not allowed; allowed: quick, default, paper
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

__all__ = ["Preset", "PRESET_NAMES", "CHAPTER_SLUGS", "get_preset", "preset_for",
           "chapter_id", "quick_mode"]

PRESET_NAMES = ("quick", "default", "paper")
CHAPTER_SLUGS = {"01": "quadratic_stability", "02": "edge_of_stability"}


@dataclass(frozen=True)
class Preset:
    """One scale of one chapter.

    Attributes:
        chapter: the chapter number, e.g. ``"02"``.
        name: ``"quick"``, ``"default"`` or ``"paper"``.
        values: the chapter's settings (read-only mapping; index the preset directly).
        label: the text shown in the dropdown, with the expected time.
        needs: what the preset needs beyond the base install, or ``""``.
    """

    chapter: str
    name: str
    values: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    needs: str = ""

    def __post_init__(self):
        object.__setattr__(self, "values", MappingProxyType(dict(self.values)))

    def __getitem__(self, key: str) -> Any:
        try:
            return self.values[key]
        except KeyError:
            raise KeyError(f"preset {self.chapter}/{self.name} has no setting {key!r}; it has "
                           f"{sorted(self.values)}") from None

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


_EOS_BASE = dict(dataset="digits", model="fc-tanh", loss="mse", optimizer="gd",
                 width=200, depth=2, momentum=0.0)

_PRESETS: dict[str, dict[str, Preset]] = {
    "01": {
        "quick": Preset("01", "quick", dict(eigenvalues=(2.0, 0.5), angle=30.0, lr=0.8,
                                            momentum=0.0, start=(1.5, 1.0), steps=30),
                        "quick: 30 steps, exact (instant)"),
        "default": Preset("01", "default", dict(eigenvalues=(2.0, 0.5), angle=30.0, lr=0.8,
                                                momentum=0.0, start=(1.5, 1.0), steps=60),
                          "default: 60 steps, exact (instant)"),
        "paper": Preset("01", "paper", dict(eigenvalues=(2.0, 0.5), angle=30.0, lr=0.8,
                                            momentum=0.0, start=(1.5, 1.0), steps=300),
                        "paper: 300 steps, exact (instant)"),
    },
    "02": {
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
    },
}


def chapter_id(chapter: str) -> str:
    """The two-digit number of a chapter given by number, slug or notebook stem.

    >>> chapter_id("02_edge_of_stability"), chapter_id("quadratic_stability"), chapter_id(1)
    ('02', '01', '01')
    """
    text = f"{chapter:02d}" if isinstance(chapter, int) and not isinstance(chapter, bool) \
        else str(chapter)
    if text in CHAPTER_SLUGS:
        return text
    for number, slug in CHAPTER_SLUGS.items():
        if text in (slug, f"{number}_{slug}"):
            return number
    known = ", ".join(f"{n} ({s})" for n, s in CHAPTER_SLUGS.items())
    raise ValueError(f"chapter {chapter!r} has no presets; chapters with presets: {known}")


def get_preset(chapter: str, name: str) -> Preset:
    """The preset ``name`` (quick/default/paper) of ``chapter``."""
    number = chapter_id(chapter)
    if name not in PRESET_NAMES:
        raise ValueError(f"preset {name!r} is not allowed; allowed: {', '.join(PRESET_NAMES)}")
    return _PRESETS[number][name]


def quick_mode() -> bool:
    """Whether ``EOSLAB_QUICK`` asks for the quick presets (any value but ``""``/``0``)."""
    return os.environ.get("EOSLAB_QUICK", "").strip().lower() not in ("", "0", "false", "no")


def preset_for(chapter: str) -> Preset:
    """``quick`` when ``EOSLAB_QUICK=1`` is set, else ``default``."""
    return get_preset(chapter, "quick" if quick_mode() else "default")


def _discover_chapter_modules() -> None:
    """Merge the presets of every ``eoslab.chapters.chNN_<slug>`` module into the registry."""
    import importlib
    import pkgutil

    from . import chapters

    for info in sorted(pkgutil.iter_modules(chapters.__path__), key=lambda m: m.name):
        if not info.name.startswith("ch"):
            continue
        module = importlib.import_module(f"{chapters.__name__}.{info.name}")
        missing = set(PRESET_NAMES) - set(module.PRESETS)
        if missing:
            raise ValueError(f"{module.__name__} lacks presets {sorted(missing)}")
        CHAPTER_SLUGS[module.NUMBER] = module.SLUG
        _PRESETS[module.NUMBER] = dict(module.PRESETS)


_discover_chapter_modules()
