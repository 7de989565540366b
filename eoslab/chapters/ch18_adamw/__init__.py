"""Chapter 18: adamw (see ``book/18_adamw.ipynb``)."""
