"""Serve the book: every chapter as a standalone Voila app, or the book in JupyterLab.

``eoslab serve`` runs Voila on ``book/`` in tree mode, so each chapter is an app at the
stable address ``/voila/render/<NN_slug>.ipynb`` and ``/`` lists them.  The flags carry
what a public deployment needs:

* **pre-heated kernels** (``--pool-size``, Voila's ``preheat_kernel``): a pool of kernels
  per chapter that have already executed the notebook, so a visitor gets the widgets
  without waiting for ``import torch`` and the first cells.  Each pooled kernel holds
  :data:`~eoslab.serve.common.KERNEL_BYTES`, so the pool costs ``pool_size x chapters``
  kernels of memory;
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
* **a cap on kernels** (``--max-kernels``, ``--max-kernels-per-client``): each page a
  visitor opens holds a kernel until the page unloads or culling reclaims it, so a loop of
  requests could otherwise exhaust the memory.  Beyond the cap a page request gets a
  "the server is busy, try again in a minute" page (HTTP 503, ``Retry-After``) instead of
  a kernel, and a request whose client disconnects before its page is sent gets its kernel
  shut down once Voila is done with the page, not when culling comes
  (:class:`eoslab.serve.guard.CappedKernelManager`).  The total defaults
  to what fits in half the memory available at start (:func:`default_max_kernels`); the
  pools come on top of it and ``--preheat auto`` fits them in the other half.
* **sources stripped** (``strip_sources``) and tracebacks hidden, also from the kernel
  websocket (``MappingKernelManager.allow_tracebacks``, and the kernel's ``stderr`` kept
  back by :class:`eoslab.serve.guard.QuietKernelConnection`).
* **SameSite cookies** (:data:`SAMESITE`): the identity and ``_xsrf`` cookies are not sent
  with requests other sites make.

``eoslab serve`` runs Voila in a session of its own and stops it on SIGTERM, SIGINT or
SIGHUP; Voila then shuts its kernels down (:func:`~eoslab.serve.common.run_until_interrupted`).

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
    >>> [a for a in voila_argv("book", max_kernels=8) if a.startswith("--CappedKernelManager")]
    ['--CappedKernelManager.max_kernels=8', '--CappedKernelManager.max_kernels_per_client=0']
    >>> voila_argv("book", port=70000)
    Traceback (most recent call last):
    ...
    ValueError: port=70000 is not allowed; use an integer in 1..65535
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from eoslab.serve.common import (
    KERNEL_BYTES,
    check_host,
    check_port,
    check_seconds,
    find_book,
    kernel_env,
    kernel_memory_text,
    number_text,
    run_until_interrupted,
)

__all__ = ["COSMETIC_HOSTS", "KERNEL_BYTES", "LOOPBACK_HOSTS", "MAX_KERNELS_PER_CLIENT", "SAMESITE",
           "add_serve_arguments", "cap_text", "chapter_url", "cmd_serve", "default_max_kernels",
           "default_max_kernels_per_client", "preheat_choice", "voila_argv"]

#: Outside hosts the served page may ask for whose failure is only cosmetic (icon fonts).
COSMETIC_HOSTS = ("cdn.jsdelivr.net",)

#: Kernels one client address may hold at once when the server listens beyond this machine.
MAX_KERNELS_PER_CLIENT = 3

#: Addresses that serve this machine only: no per-client cap by default there.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

#: The ``SameSite`` attribute of the server's cookies (identity and ``_xsrf``).
SAMESITE = "Lax"

_GUARD = "eoslab.serve.guard"


def chapter_url(base: str, notebook: str) -> str:
    """The address of one chapter's Voila app on a server at ``base``.

    Example:
        >>> chapter_url("http://127.0.0.1:8866/", "01_quadratic_stability.ipynb")
        'http://127.0.0.1:8866/voila/render/01_quadratic_stability.ipynb'
    """
    return base.rstrip("/") + "/voila/render/" + notebook


def default_max_kernels(available: int | None = None) -> int:
    """How many kernels visitors may hold at once: half of ``available`` bytes, at least 1.

    ``available`` defaults to the memory the machine has available now; each kernel
    counts :data:`KERNEL_BYTES`.

    Example:
        >>> default_max_kernels(available=10 * KERNEL_BYTES), default_max_kernels(available=0)
        (5, 1)
    """
    if available is None:
        import psutil

        available = psutil.virtual_memory().available
    return max(1, int(available // 2 // KERNEL_BYTES))


def default_max_kernels_per_client(host: str) -> int:
    """:data:`MAX_KERNELS_PER_CLIENT`, or 0 (no per-client cap) on a loopback-only ``host``.

    A server on 127.0.0.1 has one reader (or a proxy, for which the total cap is the one
    that matters), who may well keep more chapters open than a stranger should.

    Example:
        >>> default_max_kernels_per_client("0.0.0.0"), default_max_kernels_per_client("127.0.0.1")
        (3, 0)
    """
    return 0 if host in LOOPBACK_HOSTS else MAX_KERNELS_PER_CLIENT


def preheat_choice(notebooks, choice: str = "auto", *, available: int | None = None,
                   pool_size: int = 1) -> list:
    """The notebooks (names) that get a pre-heated kernel pool.

    ``choice`` is ``"all"``, ``"none"``, ``"auto"`` or a comma-separated list of chapter
    numbers (``"00,01,02"``).  ``auto`` takes notebooks in book order while their pools of
    ``pool_size`` kernels fit in half of ``available`` bytes (default: what the machine
    has free now), at :data:`KERNEL_BYTES` each: a laptop with 4 GB free pre-heats four
    chapters, a 24 GB server all of them.

    Example:
        >>> book = ["00_index.ipynb", "01_a.ipynb", "02_b.ipynb", "03_c.ipynb"]
        >>> preheat_choice(book, "auto", available=4 * KERNEL_BYTES)
        ['00_index.ipynb', '01_a.ipynb']
        >>> preheat_choice(book, "auto", available=4 * KERNEL_BYTES, pool_size=2)
        ['00_index.ipynb']
        >>> preheat_choice(book, "01,03")
        ['01_a.ipynb', '03_c.ipynb']
        >>> preheat_choice(book, "07")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: preheat='07' is not allowed: no notebook 07_*.ipynb; use all, none, auto or ...
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
        return names[:max(0, int(available // 2 // (KERNEL_BYTES * max(pool_size, 1))))]
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
               max_kernels: int | None = None, max_kernels_per_client: int | None = None,
               extra=()) -> list:
    """The command line that serves ``book`` (a folder) with Voila.

    Args:
        book: the folder of notebooks; each becomes ``/voila/render/<name>.ipynb``.
        port: the port to listen on.
        host: the address to listen on (``"0.0.0.0"`` for every interface).
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
        show_tracebacks: show Python tracebacks to visitors (debugging only); when False
            they are kept from the kernel websocket too.
        port_retries: other ports to try when ``port`` is taken (0: fail instead).
        template: Voila page template; ``eoslab`` (``lab`` without CDN stylesheets) needs
            the environment of :func:`kernel_env`, ``lab`` is Voila's own.
        max_kernels: kernels visitors may hold at once (0: no cap; ``None``:
            :func:`default_max_kernels`); pooled kernels come on top.
        max_kernels_per_client: kernels one client address may hold at once (0: no cap;
            ``None``: :func:`default_max_kernels_per_client` of ``host``).
        extra: further Voila arguments, appended unchanged.
    """
    max_kernels, max_kernels_per_client = _checked_options(
        port=port, host=host, pool_size=pool_size, port_retries=port_retries,
        cull_idle_timeout=cull_idle_timeout, cull_interval=cull_interval,
        cell_timeout=cell_timeout, max_kernels=max_kernels,
        max_kernels_per_client=max_kernels_per_client, template=template)

    def flag(value: bool) -> str:
        return "True" if value else "False"


    argv = [sys.executable, "-m", "voila", str(book),
            f"--port={port}", f"--Voila.ip={host}", f"--Voila.port_retries={port_retries}",
            f"--template={template}", f"--strip_sources={flag(strip_sources)}",
            f"--show_tracebacks={flag(show_tracebacks)}",
            f"--preheat_kernel={flag(pool_size > 0)}",
            f"--VoilaExecutor.timeout={number_text(cell_timeout)}",
            f"--MappingKernelManager.cull_idle_timeout={number_text(cull_idle_timeout)}",
            f"--MappingKernelManager.cull_interval={number_text(cull_interval)}",
            f"--MappingKernelManager.cull_connected={flag(cull_connected)}",
            f"--MappingKernelManager.allow_tracebacks={flag(show_tracebacks)}",
            f"--VoilaConfiguration.multi_kernel_manager_class={_GUARD}.CappedKernelManager",
            f"--CappedKernelManager.max_kernels={max_kernels}",
            f"--CappedKernelManager.max_kernels_per_client={max_kernels_per_client}",
            f"--Voila.kernel_websocket_connection_class={_GUARD}.QuietKernelConnection",
            # JSON, the one form traitlets reads a nested dict in from the command line
            # (Voila prints traitlets' DeprecationWarning for it at start)
            "--Voila.tornado_settings=" + json.dumps({"xsrf_cookie_kwargs": {
                "samesite": SAMESITE}}, separators=(",", ":")),
            f"--IdentityProvider.cookie_options=samesite={SAMESITE}"]
    argv += _pool_flags(book, pool_size, preheat)
    if not open_browser:
        argv.append("--no-browser")
    return argv + [str(a) for a in extra]


def _checked_options(*, port, host, pool_size, port_retries, cull_idle_timeout, cull_interval,
                     cell_timeout, max_kernels, max_kernels_per_client, template) -> tuple:
    """Check :func:`voila_argv`'s options; return the kernel caps with defaults filled in."""
    check_port(port)
    check_host(host)
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 0:
        raise ValueError(f"pool_size={pool_size!r} is not allowed; use an integer >= 0 "
                         "(0 turns kernel pre-heating off)")
    if isinstance(port_retries, bool) or not isinstance(port_retries, int) or port_retries < 0:
        raise ValueError(f"port_retries={port_retries!r} is not allowed; use an integer >= 0")
    check_seconds("cull_idle_timeout", cull_idle_timeout, allow_zero=True)
    check_seconds("cull_interval", cull_interval)
    check_seconds("cell_timeout", cell_timeout)
    if max_kernels is None:
        max_kernels = default_max_kernels()
    if max_kernels_per_client is None:
        max_kernels_per_client = default_max_kernels_per_client(host)
    for name, value in (("max_kernels", max_kernels),
                        ("max_kernels_per_client", max_kernels_per_client)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}={value!r} is not allowed; use an integer >= 0 "
                             "(0: no cap)")
    if not isinstance(template, str) or not template.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"template={template!r} is not allowed; use a Voila template name "
                         "such as eoslab or lab")
    return max_kernels, max_kernels_per_client


def _pool_flags(book, pool_size: int, preheat) -> list:
    """Pre-heating flags: the pool size, and the notebooks left out of ``preheat``."""
    if pool_size <= 0:
        return []
    flags = [f"--pool_size={pool_size}"]
    if preheat is not None:
        chosen = {str(n) for n in preheat}
        cold = sorted(p.name for p in Path(book).glob("*.ipynb") if p.name not in chosen)
        # one flag per entry (traitlets appends repeated List flags); Voila matches the
        # patterns against the notebooks' absolute paths at startup
        flags += [f"--VoilaKernelManager.preheat_denylist=(.*/)?{re.escape(n)}$" for n in cold]
    return flags


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
                        help=f"pre-heated kernels per chapter, {kernel_memory_text()} each "
                             "(0: off; default 1)")
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
    parser.add_argument("--max-kernels", type=int, default=None,
                        help="kernels visitors may hold at once; beyond it a page request "
                             "gets a 'server busy' page (default: as many as fit in half the "
                             f"available memory at {kernel_memory_text()} each; 0: no cap; "
                             "pooled kernels come on top)")
    parser.add_argument("--max-kernels-per-client", type=int, default=None,
                        help="kernels one client address may hold at once (default "
                             f"{MAX_KERNELS_PER_CLIENT}, or no cap when --host is "
                             "127.0.0.1 or localhost; 0: no cap)")
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


def cap_text(max_kernels: int, per_client: int) -> str:
    """The kernel cap and the memory it bounds, as ``eoslab serve`` reports them.

    Example:
        >>> cap_text(8, 3)
        'at most 8 visitor kernels (~3.5 GiB), 3 per client address'
        >>> cap_text(0, 0)
        'no cap on visitor kernels'
    """
    if not max_kernels:
        text = "no cap on visitor kernels"
    else:
        gib = max_kernels * KERNEL_BYTES / 2**30
        text = f"at most {max_kernels} visitor kernels (~{gib:.1f} GiB)"
    return text + (f", {per_client} per client address" if per_client else "")


def cmd_serve(args) -> int:
    """``eoslab serve``: run Voila on the book until interrupted; returns its exit status."""
    book = find_book(args.book)
    notebooks = sorted(p.name for p in book.glob("*.ipynb"))
    preheat = (preheat_choice(notebooks, args.preheat, pool_size=args.pool_size)
               if args.pool_size > 0 else [])
    max_kernels = default_max_kernels() if args.max_kernels is None else args.max_kernels
    per_client = (default_max_kernels_per_client(args.host) if args.max_kernels_per_client is None
                  else args.max_kernels_per_client)
    argv = voila_argv(book, port=args.port, host=args.host, open_browser=args.open_browser,
                      pool_size=args.pool_size, preheat=preheat,
                      cull_idle_timeout=args.cull_idle_timeout,
                      cull_interval=args.cull_interval, cull_connected=args.cull_connected,
                      cell_timeout=args.cell_timeout, strip_sources=args.strip_sources,
                      show_tracebacks=args.show_tracebacks, max_kernels=max_kernels,
                      max_kernels_per_client=per_client)
    if args.dry_run:
        print(subprocess.list2cmdline(argv))
        return 0
    shown = "localhost" if args.host in ("127.0.0.1", "0.0.0.0") else args.host
    print(f"eoslab serve: {len(notebooks)} notebooks from {book}, {len(preheat)} with "
          f"pre-heated kernels (--preheat {args.preheat}); {cap_text(max_kernels, per_client)}; "
          f"apps at http://{shown}:{args.port}/voila/render/<notebook> "
          f"(e.g. {notebooks[0]}), Ctrl-C stops", file=sys.stderr)
    return run_until_interrupted(argv, kernel_env(quick=args.quick))

