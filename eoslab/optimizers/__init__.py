"""Optimisers and schedules beyond ``torch.optim``.

``sam`` (SAM and its variants), ``normalized`` (normalised GD), ``lookahead``,
``averaging`` (SWA through ``torch.optim.swa_utils``) and ``schedules``.
"""
