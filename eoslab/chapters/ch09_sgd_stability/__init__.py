"""Chapter 09: sgd stability (see ``book/09_sgd_stability.ipynb``)."""
