"""Chapter 12: bn wd periodic (see ``book/12_bn_wd_periodic.ipynb``)."""
