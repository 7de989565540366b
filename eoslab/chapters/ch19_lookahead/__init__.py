"""Chapter 19: lookahead (see ``book/19_lookahead.ipynb``)."""
