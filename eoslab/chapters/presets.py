"""The three scales of every chapter: ``quick``, ``default`` and ``paper``.

``quick`` is what the test suite runs (``EOSLAB_QUICK=1``): seconds on a laptop CPU.
``default`` is what a reader gets on a laptop or Binder CPU: under a couple of minutes
of live, non-blocking training.  ``paper`` is the book's largest scale: the paper's own
setting only in the chapters of :data:`PAPER_SETTINGS` (label ``"paper: ..."``); elsewhere a
stand-in whose label starts ``"paper-like: "`` and says what differs from the paper (data,
size, network).  Every label gives the expected time and hardware, and a time on a GPU is
marked ``estimate`` until it is measured on one; ``needs`` says what the preset needs beyond
the base install (e.g. the CIFAR-10 files; :data:`CIFAR_NEEDS` says how to get them).

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

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

__all__ = ["CHAPTER_SLUGS", "CIFAR_NEEDS", "PAPER_SETTINGS", "PRESET_NAMES", "ChapterPreset",
           "MomentumSGD", "chapter_id", "get_preset", "preset_for", "quick_mode"]

PRESET_NAMES = ("quick", "default", "paper")

#: The chapters whose ``paper`` preset is the paper's own setting: 01 (the exact quadratic of
#: the classical analysis), 02 (Cohen et al.'s CIFAR-10 5k, fc-tanh, MSE), 07 (Figure 1's
#: sizes) and 19 (the noisy quadratic of Zhang et al., Sec. 3). Every other ``paper`` preset
#: is labelled ``paper-like``.
PAPER_SETTINGS = frozenset({"01", "02", "07", "19"})

#: The ``needs`` of every preset on CIFAR-10: the optional torchvision and the data files.
CIFAR_NEEDS = ("torchvision (pip install 'eoslab[cifar]') and the CIFAR-10 files: run "
               "torchvision.datasets.CIFAR10('~/.cache/eoslab/data', download=True) once, "
               "or point EOSLAB_DATA at a folder holding cifar-10-batches-py")

CHAPTER_SLUGS: dict[str, str] = {}


@dataclass(frozen=True, kw_only=True)
class ChapterPreset:
    """Base of a chapter's typed preset: one frozen dataclass per chapter.

    A chapter subclasses it with its own typed fields (nested frozen dataclasses for groups
    such as the small network of chapter 06) and sets ``NUMBER``. The lifecycle reads the
    preset through ``preset.name``, ``preset.label``, ``preset.needs``, ``preset["lr"]``
    and ``preset.values`` (the JSON-ready settings that key stored results).

    Attributes:
        name: ``"quick"``, ``"default"`` or ``"paper"``.
        label: the text shown in the dropdown, with the expected time (``paper-like`` and
            ``estimate`` where they apply, see the module's docstring).
        needs: what the preset needs beyond the base install, or ``""``.

    Example:
        >>> @dataclass(frozen=True, kw_only=True)
        ... class Demo(ChapterPreset):
        ...     NUMBER = "99"
        ...     lr: float = 0.1
        >>> p = Demo(name="quick", label="quick: instant")
        >>> p["lr"], dict(p.values), p.chapter
        (0.1, {'lr': 0.1}, '99')
        >>> p.replace(lr=0.2).lr
        0.2
    """

    NUMBER: ClassVar[str] = ""
    name: str
    label: str
    needs: str = ""

    @property
    def chapter(self) -> str:
        """The chapter number, e.g. ``"06"``."""
        return self.NUMBER

    @property
    def values(self) -> Mapping[str, Any]:
        """The settings (every field but name, label and needs), nested groups as dicts."""
        skip = {"name", "label", "needs"}
        return MappingProxyType({f.name: _plain(getattr(self, f.name))
                                 for f in dataclasses.fields(self) if f.name not in skip})

    def __getitem__(self, key: str) -> Any:
        if key in ("name", "label", "needs") or not hasattr(self, key):
            known = ", ".join(self.values)
            raise KeyError(f"preset {self.chapter}/{self.name} has no setting {key!r}; "
                           f"it has {known}")
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """The setting ``key``, or ``default`` when the preset has none."""
        try:
            return self[key]
        except KeyError:
            return default

    def replace(self, **changes) -> ChapterPreset:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, kw_only=True)
class MomentumSGD:
    """Minibatch SGD with heavy-ball momentum and weight decay: a group of a chapter preset.

    The step size is the chapter's own (usually its ``lr`` slider); the data and the network
    are its :class:`~eoslab.core.netspec.NetSpec`.

    Attributes:
        steps: SGD steps.
        batch_size: examples per step.
        momentum, weight_decay: those of ``torch.optim.SGD``.
        record_every: the history's cadence in steps.
    """

    steps: int
    batch_size: int
    momentum: float = 0.9
    weight_decay: float = 5e-3
    record_every: int = 20


def _plain(value: Any) -> Any:
    """A field's value as JSON-ready data (nested dataclasses as dicts, tuples as lists)."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


_PRESETS: dict[str, dict[str, ChapterPreset]] = {}


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


def get_preset(chapter: str, name: str) -> ChapterPreset:
    """The preset ``name`` (quick/default/paper) of ``chapter``."""
    number = chapter_id(chapter)
    if name not in PRESET_NAMES:
        raise ValueError(f"preset {name!r} is not allowed; allowed: {', '.join(PRESET_NAMES)}")
    return _PRESETS[number][name]


def quick_mode() -> bool:
    """Whether ``EOSLAB_QUICK`` asks for the quick presets (any value but ``""``/``0``)."""
    return os.environ.get("EOSLAB_QUICK", "").strip().lower() not in ("", "0", "false", "no")


def preset_for(chapter: str) -> ChapterPreset:
    """``quick`` when ``EOSLAB_QUICK=1`` is set, else ``default``."""
    return get_preset(chapter, "quick" if quick_mode() else "default")


def _discover_chapter_modules() -> None:
    """Merge the presets of every ``eoslab.chapters.chNN_<slug>.meta`` module into the registry."""
    import importlib
    import pkgutil

    from eoslab import chapters

    for info in sorted(pkgutil.iter_modules(chapters.__path__), key=lambda m: m.name):
        if not info.name.startswith("ch"):
            continue
        module = importlib.import_module(f"{chapters.__name__}.{info.name}.meta")
        missing = set(PRESET_NAMES) - set(module.PRESETS)
        if missing:
            raise ValueError(f"{module.__name__} lacks presets {sorted(missing)}")
        for name, preset in module.PRESETS.items():
            if not (isinstance(preset, ChapterPreset) and preset.NUMBER == module.NUMBER
                    and preset.name == name):
                raise ValueError(f"{module.__name__}.PRESETS[{name!r}] must be a ChapterPreset "
                                 f"of chapter {module.NUMBER} named {name!r}")
        CHAPTER_SLUGS[module.NUMBER] = module.SLUG
        _PRESETS[module.NUMBER] = dict(module.PRESETS)


_discover_chapter_modules()
