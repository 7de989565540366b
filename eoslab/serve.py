"""Serve the book: every chapter as a standalone Voila app, or the book in JupyterLab.

``eoslab serve`` runs Voila on ``book/`` in tree mode, so each chapter is an app at the
stable address ``/voila/render/<NN_slug>.ipynb`` and ``/`` lists them.  The flags carry
what a public deployment needs:

* **pre-heated kernels** (``--pool-size``, Voila's ``preheat_kernel``): a pool of kernels
  per chapter that have already executed the notebook, so a visitor gets the widgets
  without waiting for ``import torch`` and the first cells.  Each pooled kernel holds
  roughly 350 MB, so the pool costs ``pool_size x chapters`` kernels of memory;
  ``--pool-size 0`` turns it off, and ``--preheat`` chooses the chapters that get a pool:
  ``auto`` (the default) takes them in book order while they fit in half the memory
  available at start (see :func:`preheat_choice`), ``all``, ``none``, or a list such as
  ``00,01,02``.  A pooled chapter's app is built ahead, but its training waits for the
  visitor (:func:`eoslab.ui.base.wait_for_visitor`), so idle pools cost memory, not CPU.
* **idle-kernel culling** (``MappingKernelManager.cull_*``): a tab closed without the
  page's unload hook firing (browser crash, lost network, killed tab) otherwise leaves its
  kernel running for ever.  Pooled kernels are never culled.  ``eoslab lab`` (and Binder,
  through :func:`write_lab_server_config`) culls too, but only the kernels no tab is
  connected to (:func:`lab_kernel_culling`): JupyterLab keeps a closed notebook's kernel.
* **a per-cell execution timeout** (``VoilaExecutor.timeout``) for the page's initial
  execution, so a runaway cell cannot hold a request for ever.
* **sources stripped** (``strip_sources``) and tracebacks hidden.

The kernels inherit the server's environment; ``--quick`` sets ``EOSLAB_QUICK=1`` for them
(the chapters then use their ``quick`` preset), and ``EOSLAB_QUICK`` / ``EOSLAB_STORE``
already set in the caller's environment pass through unchanged.

Voila's ``lab`` page template asks ``cdn.jsdelivr.net`` for two FontAwesome stylesheets
(the icons of ``ipywidgets`` buttons).  Offline the request fails at once and costs only
the icons, but behind a firewall that drops packets a render-blocking stylesheet can stall
the page, so the apps are served with eoslab's ``eoslab`` template (``template="eoslab"``,
found through ``JUPYTER_PATH``, see :func:`kernel_env`), which is ``lab`` without those
links: a chapter page then asks nothing of any outside host.  Voila's tree listing at ``/``
still links FontAwesome 4 outside any template block; that request is cosmetic (folder
icons) and :data:`COSMETIC_HOSTS` names its host.

Example:
    >>> argv = voila_argv("book", port=9000, pool_size=0)
    >>> argv[1:4]
    ['-m', 'voila', 'book']
    >>> "--port=9000" in argv, "--preheat_kernel=False" in argv
    (True, True)
    >>> voila_argv("book", port=70000)
    Traceback (most recent call last):
    ...
    ValueError: port=70000 is not allowed; use an integer in 1..65535
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

__all__ = ["COSMETIC_HOSTS", "KERNEL_BYTES", "TEMPLATE_ROOT", "add_lab_arguments", "add_serve_arguments",
           "chapter_url", "cmd_lab", "cmd_serve", "find_book", "kernel_env", "lab_argv",
           "preheat_choice", "voila_argv"]

#: Outside hosts the served page may ask for whose failure is only cosmetic (icon fonts).
COSMETIC_HOSTS = ("cdn.jsdelivr.net",)


def _check_port(port) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port={port!r} is not allowed; use an integer in 1..65535")


def _check_seconds(name: str, value, allow_zero: bool = False) -> None:
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value)
          and (value >= 0 if allow_zero else value > 0))
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}={value!r} is not allowed; use a finite number of seconds {bound}")


def _check_host(host) -> None:
    if not isinstance(host, str) or not host or any(c.isspace() for c in host):
        raise ValueError(f"host={host!r} is not allowed; use a host name or an IP address "
                         "such as 127.0.0.1 or 0.0.0.0")


def find_book(path=None) -> Path:
    """The book folder: ``path`` if given, else ``./book``, else the one next to the package.

    Raises:
        ValueError: when the folder does not exist or holds no notebook.
    """
    candidates = [Path(path)] if path is not None else [
        Path.cwd() / "book", Path(__file__).resolve().parent.parent / "book"]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.ipynb")):
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise ValueError(f"book={tried} is not allowed; use a folder holding the book's .ipynb "
                     "notebooks (pass --book PATH)")


def chapter_url(base: str, notebook: str) -> str:
    """The address of one chapter's Voila app on a server at ``base``.

    Example:
        >>> chapter_url("http://127.0.0.1:8866/", "01_quadratic_stability.ipynb")
        'http://127.0.0.1:8866/voila/render/01_quadratic_stability.ipynb'
    """
    return base.rstrip("/") + "/voila/render/" + notebook


#: Data folder holding eoslab's Voila template (``voila/templates/eoslab``).
TEMPLATE_ROOT = Path(__file__).resolve().parent / "share" / "jupyter"


def kernel_env(environ=None, quick: bool = False, store=None) -> dict:
    """The environment for the server and so for its kernels.

    ``quick`` sets ``EOSLAB_QUICK=1``; ``store`` sets ``EOSLAB_STORE``; everything else
    (including an ``EOSLAB_QUICK`` the caller already exported) passes through.
    :data:`TEMPLATE_ROOT` is put first on ``JUPYTER_PATH`` so Voila finds the ``eoslab``
    page template.

    Example:
        >>> kernel_env({"PATH": "/bin"}, quick=True)["EOSLAB_QUICK"]
        '1'
        >>> "EOSLAB_QUICK" in kernel_env({"PATH": "/bin"})
        False
    """
    env = dict(os.environ if environ is None else environ)
    if quick:
        env["EOSLAB_QUICK"] = "1"
    if store is not None:
        env["EOSLAB_STORE"] = str(store)
    paths = [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if str(TEMPLATE_ROOT) not in paths:
        env["JUPYTER_PATH"] = os.pathsep.join([str(TEMPLATE_ROOT), *paths])
    return env


#: Memory one pre-heated chapter kernel holds (torch, eoslab, altair, the built app), bytes.
KERNEL_BYTES = 450 * 2**20


def preheat_choice(notebooks, choice: str = "auto", *, available: int | None = None) -> list:
    """The notebooks (names) that get a pre-heated kernel pool.

    ``choice`` is ``"all"``, ``"none"``, ``"auto"`` or a comma-separated list of chapter
    numbers (``"00,01,02"``).  ``auto`` takes notebooks in book order while their pools fit
    in half of ``available`` bytes (default: what the machine has free now), at
    :data:`KERNEL_BYTES` each: a laptop with 4 GB free pre-heats four chapters, a 24 GB
    server all of them.

    Example:
        >>> book = ["00_index.ipynb", "01_a.ipynb", "02_b.ipynb", "03_c.ipynb"]
        >>> preheat_choice(book, "auto", available=4 * KERNEL_BYTES)
        ['00_index.ipynb', '01_a.ipynb']
        >>> preheat_choice(book, "01,03")
        ['01_a.ipynb', '03_c.ipynb']
        >>> preheat_choice(book, "07")
        Traceback (most recent call last):
        ...
        ValueError: preheat='07' is not allowed: no notebook 07_*.ipynb; use all, none, auto or chapter numbers among 00, 01, 02, 03
    """
    names = sorted(str(n) for n in notebooks)
    numbers = [n.split("_", 1)[0] for n in names]
    if not isinstance(choice, str):
        raise ValueError(f"preheat={choice!r} is not allowed; use all, none, auto or chapter "
                         "numbers such as 00,01,02")
    if choice == "all":
        return names
    if choice == "none":
        return []
    if choice == "auto":
        if available is None:
            import psutil

            available = psutil.virtual_memory().available
        return names[:max(0, int(available // 2 // KERNEL_BYTES))]
    wanted = [c.strip() for c in choice.split(",") if c.strip()]
    for number in wanted:
        if number not in numbers:
            raise ValueError(f"preheat={choice!r} is not allowed: no notebook {number}_*.ipynb; "
                             f"use all, none, auto or chapter numbers among {', '.join(numbers)}")
    return [n for n, k in zip(names, numbers) if k in wanted]


def voila_argv(book, *, port: int = 8866, host: str = "127.0.0.1", open_browser: bool = False,
               pool_size: int = 1, cull_idle_timeout: float = 900, cull_interval: float = 60,
               cull_connected: bool = True, cell_timeout: float = 600,
               strip_sources: bool = True, show_tracebacks: bool = False,
               port_retries: int = 50, template: str = "eoslab", preheat=None,
               extra=()) -> list:
    """The command line that serves ``book`` (a folder) with Voila.

    Args:
        book: the folder of notebooks; each becomes ``/voila/render/<name>.ipynb``.
        port, host: where to listen (``host="0.0.0.0"`` for every interface).
        open_browser: open the tree page in a browser.
        pool_size: pre-heated kernels kept ready per notebook; 0 turns pre-heating off.
        preheat: the notebook names that get the pool (``None``: every notebook); the
            others start a kernel when visited (see :func:`preheat_choice`).
        cull_idle_timeout: seconds of kernel inactivity after which a kernel is shut down.
        cull_interval: seconds between two culling passes.
        cull_connected: cull idle kernels even while a page is still connected (a tab left
            open); the page then needs a reload.
        cell_timeout: seconds one cell may run while the page is first executed.
        strip_sources: hide code cells in the served page.
        show_tracebacks: show Python tracebacks to visitors (debugging only).
        port_retries: other ports to try when ``port`` is taken (0: fail instead).
        template: Voila page template; ``eoslab`` (``lab`` without CDN stylesheets) needs
            the environment of :func:`kernel_env`, ``lab`` is Voila's own.
        extra: further Voila arguments, appended unchanged.
    """
    _check_port(port)
    _check_host(host)
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 0:
        raise ValueError(f"pool_size={pool_size!r} is not allowed; use an integer >= 0 "
                         "(0 turns kernel pre-heating off)")
    if isinstance(port_retries, bool) or not isinstance(port_retries, int) or port_retries < 0:
        raise ValueError(f"port_retries={port_retries!r} is not allowed; use an integer >= 0")
    _check_seconds("cull_idle_timeout", cull_idle_timeout, allow_zero=True)
    _check_seconds("cull_interval", cull_interval)
    _check_seconds("cell_timeout", cell_timeout)
    if not isinstance(template, str) or not template.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"template={template!r} is not allowed; use a Voila template name "
                         "such as eoslab or lab")

    def flag(value: bool) -> str:
        return "True" if value else "False"

    argv = [sys.executable, "-m", "voila", str(book),
            f"--port={port}", f"--Voila.ip={host}", f"--Voila.port_retries={port_retries}",
            f"--template={template}", f"--strip_sources={flag(strip_sources)}",
            f"--show_tracebacks={flag(show_tracebacks)}",
            f"--preheat_kernel={flag(pool_size > 0)}",
            f"--VoilaExecutor.timeout={_num(cell_timeout)}",
            f"--MappingKernelManager.cull_idle_timeout={_num(cull_idle_timeout)}",
            f"--MappingKernelManager.cull_interval={_num(cull_interval)}",
            f"--MappingKernelManager.cull_connected={flag(cull_connected)}"]
    if pool_size > 0:
        argv.append(f"--pool_size={pool_size}")
        if preheat is not None:
            chosen = {str(n) for n in preheat}
            cold = sorted(p.name for p in Path(book).glob("*.ipynb") if p.name not in chosen)
            if cold:
                # one flag per entry (traitlets appends repeated List flags); Voila matches
                # the patterns against the notebooks' absolute paths at startup
                argv += [f"--VoilaKernelManager.preheat_denylist=(.*/)?{re.escape(n)}$"
                         for n in cold]
    if not open_browser:
        argv.append("--no-browser")
    return argv + [str(a) for a in extra]


def _flag_value(value) -> str:
    return str(value) if isinstance(value, bool) else _num(value)


def _num(value) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


LAB_CULL_IDLE_TIMEOUT = 1800.0  # s: a closed chapter's kernel is shut down after 30 idle min


def lab_kernel_culling(cull_idle_timeout: float = LAB_CULL_IDLE_TIMEOUT,
                       cull_interval: float = 60) -> dict:
    """The ``MappingKernelManager`` settings that give JupyterLab back closed chapters' kernels.

    JupyterLab leaves a notebook's kernel running when its tab closes, and a chapter's
    kernel holds ~500 MB once it has run (19 chapters opened in turn left 19 kernels and
    8.0 GB in use), far more than a Binder session has.  With these settings Jupyter Server shuts down a kernel that no
    page is connected to once it has been idle ``cull_idle_timeout`` seconds
    (``cull_connected=False``: an open tab keeps its kernel however long it is idle, and a
    busy kernel is never culled); ``cull_idle_timeout=0`` turns culling off.

    Example:
        >>> lab_kernel_culling(600)
        {'cull_idle_timeout': 600, 'cull_interval': 60, 'cull_connected': False}
    """
    _check_seconds("cull_idle_timeout", cull_idle_timeout, allow_zero=True)
    _check_seconds("cull_interval", cull_interval)
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
             extra=()) -> list:
    """The command line that opens ``book`` in JupyterLab.

    The server's root is the book's parent folder, so paths read ``book/NN_slug.ipynb``
    exactly as on Binder; the first page opened is ``notebook``.  ``allow_root=None``
    passes ``--allow-root`` when running as root (containers, CI).  Kernels no tab is
    connected to are shut down after ``cull_idle_timeout`` idle seconds, checked every
    ``cull_interval`` seconds (:func:`lab_kernel_culling`; 0: never).

    Example:
        >>> argv = lab_argv("/repo/book", port=9999, open_browser=False, allow_root=True)
        >>> argv[1:3], "--allow-root" in argv, "--no-browser" in argv
        (['-m', 'jupyterlab'], True, True)
        >>> [a for a in argv if a.startswith("--LabApp.default_url")]
        ['--LabApp.default_url=/lab/tree/book/00_index.ipynb']
        >>> [a for a in argv if a.startswith("--MappingKernelManager.cull_idle")]
        ['--MappingKernelManager.cull_idle_timeout=1800']
    """
    _check_port(port)
    _check_host(host)
    culling = lab_kernel_culling(cull_idle_timeout, cull_interval)
    book = Path(book)
    if allow_root is None:
        allow_root = hasattr(os, "geteuid") and os.geteuid() == 0
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={book.parent}",
            f"--port={port}", f"--ServerApp.ip={host}",
            f"--LabApp.default_url=/lab/tree/{book.name}/{notebook}"]
    argv += [f"--MappingKernelManager.{name}={_flag_value(value)}"
             for name, value in culling.items()]
    if allow_root:
        argv.append("--allow-root")
    if not open_browser:
        argv.append("--no-browser")
    return argv + [str(a) for a in extra]


def add_serve_arguments(parser) -> None:
    """The ``eoslab serve`` flags (defaults suit a small public deployment)."""
    parser.add_argument("--book", default=None, help="the book folder (default: ./book)")
    parser.add_argument("--port", type=int, default=8866, help="port (default 8866)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("--open", dest="open_browser", action="store_true",
                        help="open the book's tree page in a browser")
    parser.add_argument("--no-browser", dest="open_browser", action="store_false",
                        help="do not open a browser (the default)")
    parser.add_argument("--pool-size", type=int, default=1,
                        help="pre-heated kernels per chapter, ~350 MB each (0: off; default 1)")
    parser.add_argument("--preheat", default="auto",
                        help="chapters that get pre-heated kernels: auto (as many as fit in "
                             "half the free memory, in book order; the default), all, none, "
                             "or numbers such as 00,01,02")
    parser.add_argument("--cull-idle-timeout", type=float, default=900,
                        help="shut down kernels idle this many seconds (default 900)")
    parser.add_argument("--cull-interval", type=float, default=60,
                        help="seconds between culling passes (default 60)")
    parser.add_argument("--keep-connected", dest="cull_connected", action="store_false",
                        help="never cull a kernel whose page is still open")
    parser.add_argument("--cell-timeout", type=float, default=600,
                        help="seconds one cell may run while a page loads (default 600)")
    parser.add_argument("--show-sources", dest="strip_sources", action="store_false",
                        help="show the code cells in the apps")
    parser.add_argument("--debug", dest="show_tracebacks", action="store_true",
                        help="show Python tracebacks in the page")
    parser.add_argument("--quick", action="store_true",
                        help="set EOSLAB_QUICK=1 for the kernels (the quick preset)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the Voila command instead of running it")
    parser.set_defaults(open_browser=False)


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
    parser.add_argument("--quick", action="store_true",
                        help="set EOSLAB_QUICK=1 for the kernels (the quick preset)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the JupyterLab command instead of running it")


def _run(argv: list, env: dict) -> int:
    process = subprocess.Popen(argv, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()


def cmd_serve(args) -> int:
    """``eoslab serve``: run Voila on the book until interrupted; returns its exit status."""
    book = find_book(args.book)
    notebooks = sorted(p.name for p in book.glob("*.ipynb"))
    preheat = preheat_choice(notebooks, args.preheat) if args.pool_size > 0 else []
    argv = voila_argv(book, port=args.port, host=args.host, open_browser=args.open_browser,
                      pool_size=args.pool_size, preheat=preheat,
                      cull_idle_timeout=args.cull_idle_timeout,
                      cull_interval=args.cull_interval, cull_connected=args.cull_connected,
                      cell_timeout=args.cell_timeout, strip_sources=args.strip_sources,
                      show_tracebacks=args.show_tracebacks)
    if args.dry_run:
        print(subprocess.list2cmdline(argv))
        return 0
    shown = "localhost" if args.host in ("127.0.0.1", "0.0.0.0") else args.host
    print(f"eoslab serve: {len(notebooks)} notebooks from {book}, {len(preheat)} with "
          f"pre-heated kernels (--preheat {args.preheat}); apps at "
          f"http://{shown}:{args.port}/voila/render/<notebook> (e.g. {notebooks[0]}), "
          "Ctrl-C stops", file=sys.stderr)
    return _run(argv, kernel_env(quick=args.quick))


def cmd_lab(args) -> int:
    """``eoslab lab``: open the book in JupyterLab; returns JupyterLab's exit status."""
    book = find_book(args.book)
    first = "00_index.ipynb" if (book / "00_index.ipynb").exists() else \
        min(p.name for p in book.glob("*.ipynb"))
    argv = lab_argv(book, port=args.port, host=args.host, open_browser=args.open_browser,
                    notebook=first, cull_idle_timeout=args.cull_idle_timeout)
    if args.dry_run:
        print(subprocess.list2cmdline(argv))
        return 0
    return _run(argv, kernel_env(quick=args.quick))
