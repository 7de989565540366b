"""Chapter 16: sam (see ``book/16_sam.ipynb``)."""
