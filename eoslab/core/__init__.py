"""The core layer: from a configuration to a trained, stored run.

``config`` (:class:`~eoslab.core.config.TrainConfig`), ``data``, ``models``, ``losses`` and
``optim`` (the optimiser registry) build the pieces; ``netspec`` names a chapter's data and
network in one value; ``train`` is the one training loop; ``sweep`` and ``batched`` train
many step sizes at once; ``experiment`` runs a config end to end; ``store`` keeps the
results; ``probe_run`` is a full-batch run with probes returning a JSON-ready result for the
chapters.
"""
