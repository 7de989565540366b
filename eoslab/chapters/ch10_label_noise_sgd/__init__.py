"""Chapter 10: label noise sgd (see ``book/10_label_noise_sgd.ipynb``)."""
