"""Chapter 07: threshold neurons (see ``book/07_threshold_neurons.ipynb``)."""
