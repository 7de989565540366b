"""Chapter 06: large step sizes (see ``book/06_large_step_sizes.ipynb``)."""

# The preset registry first: it imports every chapter's meta, this one's included, so
# importing ``meta`` (or a module using it) directly finds the registry complete.
import eoslab.chapters.presets  # noqa: F401
