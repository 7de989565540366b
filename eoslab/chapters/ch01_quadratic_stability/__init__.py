"""Chapter 01: quadratic stability (see ``book/01_quadratic_stability.ipynb``)."""
