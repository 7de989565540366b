"""What the Voila and JupyterLab entry points share: checks, the book, the kernels' environment."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

__all__ = ["KERNEL_BYTES", "TEMPLATE_ROOT", "check_host", "check_port", "check_seconds",
           "find_book", "flag_value", "kernel_env", "kernel_memory_text", "number_text",
           "run_until_interrupted"]


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


def run_until_interrupted(argv: list, env: dict) -> int:
    """Run ``argv`` until it exits or Ctrl-C (then terminate it); return its exit status."""
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
