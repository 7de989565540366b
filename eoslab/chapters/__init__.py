"""The book's chapters: one package per chapter, ``chNN_<slug>``.

A chapter package holds ``meta`` (``NUMBER``, ``SLUG`` and the ``PRESETS`` quick / default /
paper), the paper-specific science, and ``app`` (the chapter's widgets). The registry of
presets is :mod:`eoslab.chapters.presets`; it discovers every ``chNN_<slug>.meta`` module,
so a new chapter adds a package without editing this one.
"""

# The registry first: it imports every chapter's meta, so a chapter module imported on its
# own (a doctest, an experiment) finds the registry complete.
from eoslab.chapters import presets  # noqa: E402, F401
