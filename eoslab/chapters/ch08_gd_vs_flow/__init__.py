"""Chapter 08: gd vs flow (see ``book/08_gd_vs_flow.ipynb``)."""

# The preset registry first: it imports every chapter's meta, this one's included, so
# importing ``meta`` (or a module using it) directly finds the registry complete.
import eoslab.chapters.presets  # noqa: F401
