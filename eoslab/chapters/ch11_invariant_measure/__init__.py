"""Chapter 11: invariant measure (see ``book/11_invariant_measure.ipynb``)."""
