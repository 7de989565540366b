"""Per-chapter preset modules, discovered by :mod:`eoslab.presets`.

Each module ``chNN_<slug>.py`` defines ``NUMBER = "NN"``, ``SLUG = "<slug>"`` and
``PRESETS = {"quick": Preset(...), "default": Preset(...), "paper": Preset(...)}``, so a
new chapter adds its presets in a file of its own.
"""
