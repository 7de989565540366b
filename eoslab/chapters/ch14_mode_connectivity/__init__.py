"""Chapter 14: mode connectivity (see ``book/14_mode_connectivity.ipynb``)."""
