"""Serving the book: each chapter as a Voila app (``eoslab serve``) or JupyterLab (``eoslab lab``).

:mod:`eoslab.serve.voila` builds Voila's command line with what a public deployment needs
(pre-heated kernels, culling, timeouts, a kernel cap, hidden tracebacks, SameSite cookies,
a template without CDN links); :mod:`eoslab.serve.guard` is what it loads into Voila's
process (the kernel cap, the quiet kernel websocket);
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
    MAX_KERNELS_PER_CLIENT,
    SAMESITE,
    add_serve_arguments,
    chapter_url,
    cmd_serve,
    default_max_kernels,
    default_max_kernels_per_client,
    preheat_choice,
    voila_argv,
)

__all__ = ["COSMETIC_HOSTS", "KERNEL_BYTES", "LAB_CULL_IDLE_TIMEOUT", "MAX_KERNELS_PER_CLIENT",
           "SAMESITE", "TEMPLATE_ROOT", "add_lab_arguments", "add_serve_arguments",
           "chapter_url", "cmd_lab", "cmd_serve", "default_max_kernels",
           "default_max_kernels_per_client", "find_book", "kernel_env", "lab_argv",
           "lab_kernel_culling", "preheat_choice", "voila_argv", "write_lab_server_config"]
