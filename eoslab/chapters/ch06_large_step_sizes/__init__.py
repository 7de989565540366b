"""Chapter 06: large step sizes (see ``book/06_large_step_sizes.ipynb``)."""
