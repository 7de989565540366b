"""The core layer: from a configuration to a trained, stored run.

``config`` (:class:`~eoslab.core.config.TrainConfig`), ``data``, ``models``, ``losses`` and
``optim`` (the optimiser registry) build the pieces, and ``checks``, ``options`` and
``memory`` validate them before any work; ``params`` is the parameter dict and its flat
view; ``netspec`` names a chapter's data and network in one value; ``train`` is the one
training loop, its steps in ``steps``; ``sweep``, ``batched`` and ``batched_model`` train
many step sizes at once; ``experiment`` runs a config end to end; ``store`` keeps the
results (``store_files``: checksummed files, ``stored_checks``: their content, ``claims``:
one trainer per key); ``grid_spec``, ``sweep_plan``, ``ray_sweep`` and ``run_table`` run
and list grids; ``probe_run`` is a full-batch run with probes for the chapters.
"""
