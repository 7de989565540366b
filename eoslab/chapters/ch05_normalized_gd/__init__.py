"""Chapter 05: normalized gd (see ``book/05_normalized_gd.ipynb``)."""
