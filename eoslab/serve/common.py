"""What the Voila and JupyterLab entry points share: checks, the book, the kernels' environment."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

__all__ = ["KERNEL_BYTES", "STOP_SIGNALS", "TEMPLATE_ROOT", "check_host", "check_port",
           "check_seconds", "find_book", "flag_value", "kernel_env", "kernel_memory_text",
           "number_text", "run_until_interrupted"]


def check_port(port) -> None:
    """Raise ``ValueError`` unless ``port`` is an integer in 1..65535."""
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port={port!r} is not allowed; use an integer in 1..65535")


def check_seconds(name: str, value, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number of seconds."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float))
          and math.isfinite(value)
          and (value >= 0 if allow_zero else value > 0))
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}={value!r} is not allowed; use a finite number of seconds "
                         f"{bound}")


def check_host(host) -> None:
    """Raise ``ValueError`` unless ``host`` is a non-empty name without spaces."""
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


TEMPLATE_ROOT = Path(__file__).resolve().parents[1] / "share" / "jupyter"


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


def flag_value(value) -> str:
    """A flag's text: booleans as ``True``/``False``, numbers as :func:`number_text`."""
    return str(value) if isinstance(value, bool) else number_text(value)


def number_text(value) -> str:
    """An integral number without ``.0``, any other as its ``repr``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


#: The signals on which ``eoslab serve`` and ``eoslab lab`` stop their server and its kernels.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_until_interrupted(argv: list, env: dict, *, grace: float = 30,
                          poll: float = 1.0) -> int:
    """Run the server ``argv`` until it exits or a stop signal arrives; return its status.

    The server runs in a session of its own.  Each of :data:`STOP_SIGNALS` (a ``kill``,
    Ctrl-C, a closed terminal) is passed on to it as SIGTERM, on which Voila and Jupyter
    Server shut their kernels down and exit; a server still running ``grace`` seconds later
    is killed.  Kernels run in sessions of their own (``jupyter_client`` starts them so), so
    the processes below the server are noted every ``poll`` seconds while it runs, and any
    of them still alive once it has exited (it was killed, or it crashed) are terminated.
    A status of death by signal N is returned as 128 + N, as a shell reports it.
    """
    process = subprocess.Popen(argv, env=env, start_new_session=True)
    stopping: list[int] = []

    def stop(signum, _frame) -> None:
        stopping.append(signum)
        _signal_session(process, signal.SIGTERM)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    family: dict = {}
    try:
        deadline = None
        while True:
            family = _descendants(process.pid, family)
            try:
                status = process.wait(timeout=poll)
                break
            except subprocess.TimeoutExpired:
                if stopping and deadline is None:
                    deadline = time.monotonic() + grace
                if deadline is not None and time.monotonic() > deadline:
                    _signal_session(process, signal.SIGKILL)
            except KeyboardInterrupt:  # not the main thread: no handler was installed
                stop(signal.SIGINT, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if process.poll() is None:
            _signal_session(process, signal.SIGKILL)
            process.wait()
        _terminate(list(family.values()))
    return 128 - status if status < 0 else status


def _signal_session(process: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the session (process group) that ``process`` leads."""
    if process.returncode is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass


def _descendants(pid: int, known: dict) -> dict:
    """The processes of ``known`` (pid -> psutil.Process) still running, and those below ``pid``."""
    import psutil

    try:
        found = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        found = []
    return {p.pid: p for p in [*known.values(), *found] if p.is_running()}


def _terminate(processes: list, timeout: float = 10) -> None:
    """SIGTERM the still running ``processes``, SIGKILL those alive ``timeout`` s later."""
    import psutil

    alive = []
    for proc in processes:
        try:
            proc.terminate()  # psutil checks that the pid still names the same process
            alive.append(proc)
        except psutil.Error:
            pass
    _, left = psutil.wait_procs(alive, timeout=timeout)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass


#: Memory one chapter kernel holds once its app is built and has run (torch, eoslab,
#: Altair, the app and its data), in bytes: the one figure behind the pool size, the
#: pre-heat choice, the README and ``--help``.
KERNEL_BYTES = 450 * 2**20


def kernel_memory_text() -> str:
    """:data:`KERNEL_BYTES` as the docs and ``--help`` print it.

    >>> kernel_memory_text()
    '~450 MiB'
    """
    return f"~{KERNEL_BYTES // 2**20} MiB"
