"""Chapter 15: swa (see ``book/15_swa.ipynb``)."""
