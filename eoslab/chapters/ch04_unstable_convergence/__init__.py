"""Chapter 04: unstable convergence (see ``book/04_unstable_convergence.ipynb``)."""
