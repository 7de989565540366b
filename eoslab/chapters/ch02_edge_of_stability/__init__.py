"""Chapter 02: edge of stability (see ``book/02_edge_of_stability.ipynb``)."""
