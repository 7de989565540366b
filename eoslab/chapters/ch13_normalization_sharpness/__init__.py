"""Chapter 13: normalization sharpness (see ``book/13_normalization_sharpness.ipynb``)."""
