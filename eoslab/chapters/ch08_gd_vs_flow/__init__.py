"""Chapter 08: gd vs flow (see ``book/08_gd_vs_flow.ipynb``)."""
