"""Chapter 03: self stabilization (see ``book/03_self_stabilization.ipynb``)."""
