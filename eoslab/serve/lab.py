"""The book in JupyterLab (``eoslab lab``), and the kernel culling that Binder shares with it.

``eoslab lab`` roots the server at the book folder, with terminals off unless
``--terminals`` is given; it stops JupyterLab and its kernels on SIGTERM, SIGINT or SIGHUP
(:func:`~eoslab.serve.common.run_until_interrupted`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eoslab.serve.common import (
    check_host,
    check_port,
    check_seconds,
    find_book,
    flag_value,
    kernel_env,
    run_until_interrupted,
)

__all__ = ["LAB_CULL_IDLE_TIMEOUT", "add_lab_arguments", "cmd_lab", "lab_argv",
           "lab_kernel_culling", "write_lab_server_config"]

LAB_CULL_IDLE_TIMEOUT = 1800.0  # s: a closed chapter's kernel is shut down after 30 idle min


def lab_kernel_culling(cull_idle_timeout: float = LAB_CULL_IDLE_TIMEOUT,
                       cull_interval: float = 60) -> dict:
    """The ``MappingKernelManager`` settings that give JupyterLab back closed chapters' kernels.

    JupyterLab leaves a notebook's kernel running when its tab closes, and a chapter's
    kernel holds :data:`~eoslab.serve.common.KERNEL_BYTES` once it has run, so a reader
    going through the book would soon hold more than a Binder session has. With these
    settings Jupyter Server shuts down a kernel that no page is connected to once it has
    been idle ``cull_idle_timeout`` seconds
    (``cull_connected=False``: an open tab keeps its kernel however long it is idle, and a
    busy kernel is never culled); ``cull_idle_timeout=0`` turns culling off.

    Example:
        >>> lab_kernel_culling(600)
        {'cull_idle_timeout': 600, 'cull_interval': 60, 'cull_connected': False}
    """
    check_seconds("cull_idle_timeout", cull_idle_timeout, allow_zero=True)
    check_seconds("cull_interval", cull_interval)
    return {"cull_idle_timeout": cull_idle_timeout, "cull_interval": cull_interval,
            "cull_connected": False}


def write_lab_server_config(config_dir=None, **culling) -> Path:
    """Add :func:`lab_kernel_culling` to ``config_dir/jupyter_server_config.json``.

    For servers eoslab does not start itself: Binder's postBuild writes it to the user's
    Jupyter configuration folder (the default ``config_dir``: ``$JUPYTER_CONFIG_DIR`` or
    ``~/.jupyter``), which Jupyter Server reads at start.  Other settings already in the
    file are kept.  Returns the file's path.
    """
    if config_dir is None:
        from jupyter_core.paths import jupyter_config_dir

        config_dir = jupyter_config_dir()
    path = Path(config_dir) / "jupyter_server_config.json"
    config = json.loads(path.read_text()) if path.exists() else {}
    config.setdefault("MappingKernelManager", {}).update(lab_kernel_culling(**culling))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def lab_argv(book, *, port: int = 8888, host: str = "127.0.0.1", open_browser: bool = True,
             allow_root=None, notebook: str = "00_index.ipynb",
             cull_idle_timeout: float = LAB_CULL_IDLE_TIMEOUT, cull_interval: float = 60,
             terminals: bool = False, extra=()) -> list:
    """The command line that opens ``book`` in JupyterLab.

    The server's root is the book folder itself, so JupyterLab shows (and its contents API
    reads and writes) the chapters and nothing else of the machine: paths read
    ``NN_slug.ipynb``, and the first page opened is ``notebook``.  Terminals, a shell for
    whoever reaches the server, are off unless ``terminals`` is true.  ``allow_root=None``
    passes ``--allow-root`` when running as root (containers, CI).  Kernels no tab is
    connected to are shut down after ``cull_idle_timeout`` idle seconds, checked every
    ``cull_interval`` seconds (:func:`lab_kernel_culling`; 0: never).

    Example:
        >>> argv = lab_argv("/repo/book", port=9999, open_browser=False, allow_root=True)
        >>> argv[1:3], "--allow-root" in argv, "--no-browser" in argv
        (['-m', 'jupyterlab'], True, True)
        >>> [a for a in argv if a.startswith(("--ServerApp.root_dir", "--LabApp.default_url"))]
        ['--ServerApp.root_dir=/repo/book', '--LabApp.default_url=/lab/tree/00_index.ipynb']
        >>> [a for a in argv if a.startswith("--ServerApp.terminals")]
        ['--ServerApp.terminals_enabled=False']
        >>> [a for a in argv if a.startswith("--MappingKernelManager.cull_idle")]
        ['--MappingKernelManager.cull_idle_timeout=1800']
    """
    check_port(port)
    check_host(host)
    culling = lab_kernel_culling(cull_idle_timeout, cull_interval)
    book = Path(book)
    if allow_root is None:
        allow_root = hasattr(os, "geteuid") and os.geteuid() == 0
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={book}",
            f"--port={port}", f"--ServerApp.ip={host}",
            f"--LabApp.default_url=/lab/tree/{notebook}",
            f"--ServerApp.terminals_enabled={flag_value(bool(terminals))}"]
    argv += [f"--MappingKernelManager.{name}={flag_value(value)}"
             for name, value in culling.items()]
    if allow_root:
        argv.append("--allow-root")
    if not open_browser:
        argv.append("--no-browser")
    return argv + [str(a) for a in extra]


def add_lab_arguments(parser) -> None:
    """The ``eoslab lab`` flags."""
    parser.add_argument("--book", default=None, help="the book folder (default: ./book)")
    parser.add_argument("--port", type=int, default=8888, help="port (default 8888)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--no-browser", dest="open_browser", action="store_false",
                        help="do not open a browser")
    parser.add_argument("--cull-idle-timeout", type=float, default=LAB_CULL_IDLE_TIMEOUT,
                        help="shut down kernels of closed tabs idle this many seconds "
                             f"(default {LAB_CULL_IDLE_TIMEOUT:.0f}; 0: never)")
    parser.add_argument("--terminals", action="store_true",
                        help="allow terminals (a shell on this machine) in JupyterLab; off "
                             "by default")
    parser.add_argument("--quick", action="store_true",
                        help="set EOSLAB_QUICK=1 for the kernels (the quick preset)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the JupyterLab command instead of running it")


def cmd_lab(args) -> int:
    """``eoslab lab``: open the book in JupyterLab; returns JupyterLab's exit status."""
    book = find_book(args.book)
    first = "00_index.ipynb" if (book / "00_index.ipynb").exists() else \
        min(p.name for p in book.glob("*.ipynb"))
    argv = lab_argv(book, port=args.port, host=args.host, open_browser=args.open_browser,
                    notebook=first, cull_idle_timeout=args.cull_idle_timeout,
                    terminals=args.terminals)
    if args.dry_run:
        print(subprocess.list2cmdline(argv))
        return 0
    return run_until_interrupted(argv, kernel_env(quick=args.quick))
