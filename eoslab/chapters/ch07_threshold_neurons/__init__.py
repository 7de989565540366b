"""Chapter 07: threshold neurons (see ``book/07_threshold_neurons.ipynb``)."""

# The preset registry first: it imports every chapter's meta, this one's included, so
# importing ``meta`` (or a module using it) directly finds the registry complete.
import eoslab.chapters.presets  # noqa: F401
