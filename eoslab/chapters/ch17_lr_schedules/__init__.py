"""Chapter 17: lr schedules (see ``book/17_lr_schedules.ipynb``)."""
