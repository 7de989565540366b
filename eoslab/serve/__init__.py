"""Serving the book: each chapter as a Voila app (``eoslab serve``) or JupyterLab (``eoslab lab``).

:mod:`eoslab.serve.voila` builds Voila's command line with what a public deployment needs
(pre-heated kernels, culling, timeouts, a template without CDN links);
:mod:`eoslab.serve.lab` opens the book in JupyterLab with kernel culling, which Binder
shares; :mod:`eoslab.serve.common` holds the checks and the kernels' environment.
"""

from eoslab.serve.common import TEMPLATE_ROOT, find_book, kernel_env
from eoslab.serve.lab import (
    LAB_CULL_IDLE_TIMEOUT,
    add_lab_arguments,
    cmd_lab,
    lab_argv,
    lab_kernel_culling,
    write_lab_server_config,
)
from eoslab.serve.voila import (
    COSMETIC_HOSTS,
    KERNEL_BYTES,
    add_serve_arguments,
    chapter_url,
    cmd_serve,
    preheat_choice,
    voila_argv,
)

__all__ = ["COSMETIC_HOSTS", "KERNEL_BYTES", "LAB_CULL_IDLE_TIMEOUT", "TEMPLATE_ROOT",
           "add_lab_arguments", "add_serve_arguments", "chapter_url", "cmd_lab", "cmd_serve",
           "find_book", "kernel_env", "lab_argv", "lab_kernel_culling", "preheat_choice",
           "voila_argv", "write_lab_server_config"]
