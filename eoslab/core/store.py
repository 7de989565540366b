"""Results on disk, keyed by a hash of the experiment's configuration.

Layout: ``<root>/<kind>/<key>/`` holds ``result.json`` (config + run) and, while a run is
in progress, ``checkpoint.pt``.  ``root`` is ``$EOSLAB_STORE`` or ``~/.cache/eoslab``.

Every write is atomic: the bytes go to a temporary file in the same directory, are
flushed and fsync'ed, then ``os.replace`` moves them over the target in one step.  A
write killed half-way leaves the previous file (or none), never a truncated one.

Every file carries a SHA-256 checksum of its content and is verified when read:

* ``result.json`` is ``{"format": "eoslab-result/1", "sha256": h, "data": blob}`` where
  ``h`` hashes the canonical JSON of ``blob`` (sorted keys, no spaces);
* ``checkpoint.pt`` and ``tensors.pt`` are the line ``EOSLAB-TORCH/1 sha256=<h>`` followed
  by the bytes of :func:`torch.save`, loaded with ``torch.load(weights_only=True)``: only
  tensors and plain containers, never arbitrary pickled objects (which could run code).

A file that fails its check (truncated, empty, garbage, edited, wrong shape, a pickle with
objects) is reported in a :class:`StoreWarning` naming its path, renamed to
``<name>.corrupt-<timestamp>`` beside it, and treated as absent, so the result is computed
again and the next run finds a good file.  Files without a checksum (written by an older
eoslab, or by hand) are not trusted either: they are moved aside and recomputed the same
way, since a checksum that can be dropped would protect nothing.

A result that cannot be written to the store (a full disk, a read-only folder) is written
to a fresh temporary folder instead, named in a :class:`StoreWarning`, never lost;
:meth:`RunStore.check_writable` tells a caller before any work that the store is unusable.

Example:
    >>> import tempfile
    >>> store = RunStore(tempfile.mkdtemp())
    >>> _ = store.save_json("slices", "abc", {"x": [1, 2]})
    >>> store.load_json("slices", "abc")
    {'x': [1, 2]}
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from eoslab.core.store_files import (
    Corrupt,
    StoreWarning,
    atomic_write_bytes,
    decode_json,
    decode_torch,
    encode_json,
    encode_torch,
    read_verified,
)
from eoslab.core.stored_checks import checkpoint_problem, run_problem

__all__ = ["Checkpointer", "RunStore", "StoreError", "StoreWarning", "atomic_write_bytes",
           "checkpoint_problem", "default_root", "result_key"]


class StoreError(OSError, ValueError):
    """The store cannot be used (it is a file, read-only, ...); the message names the path."""


def _feed(h, value) -> None:
    if isinstance(value, nn.Module):
        value = {**dict(value.state_dict()), "__class__": type(value).__name__}
    if torch.is_tensor(value):
        t = value.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=str):
            h.update(json.dumps(str(k)).encode())
            _feed(h, value[k])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(b"[")
        for v in value:
            _feed(h, v)
        h.update(b"]")
    else:
        h.update(json.dumps(value, sort_keys=True, default=str).encode())


def result_key(**parts) -> str:
    """A 16-hex-digit hash of models, parameter dicts, directions, seeds, grids, options.

    >>> result_key(seed=0, grid=[0.0, 1.0]) == result_key(grid=[0.0, 1.0], seed=0)
    True
    >>> result_key(seed=0) == result_key(seed=1)
    False
    """
    h = hashlib.sha256()
    _feed(h, parts)
    return h.hexdigest()[:16]


def default_root() -> Path:
    """``$EOSLAB_STORE`` if set, else ``~/.cache/eoslab``."""
    return Path(os.environ.get("EOSLAB_STORE") or Path.home() / ".cache" / "eoslab")


class Checkpointer:
    """Saves a training state every ``every`` steps to ``path`` (atomically, checksummed).

    A checkpoint that cannot be written (a full disk) is skipped with a
    :class:`StoreWarning`: training goes on, it just cannot resume from there.
    """

    def __init__(self, path: Path, every: int):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"checkpoint every={every!r} is not allowed; use an integer >= 1")
        self.path, self.every = Path(path), every
        self._warned = False

    def save(self, state: dict) -> None:
        data = encode_torch(state)
        try:
            atomic_write_bytes(self.path, data)
        except OSError as err:
            if not self._warned:
                warnings.warn(f"checkpoint {self.path} could not be written ({err}); training "
                              f"continues without it", StoreWarning, stacklevel=2)
            self._warned = True

    def load(self, *, max_step: int | None = None, model: nn.Module | None = None,
             optimizer: torch.optim.Optimizer | None = None) -> dict | None:
        """The saved state, or ``None`` when there is none or it fails a check.

        A checkpoint that fails its checksum, ``torch.load(weights_only=True)`` or
        :func:`checkpoint_problem` (with ``max_step``, ``model``, ``optimizer``) is moved
        aside with a :class:`StoreWarning`, so the run starts again from step 0.
        """
        def decode(raw: bytes):
            state = decode_torch(raw)
            try:
                problem = checkpoint_problem(state, max_step, model, optimizer)
            except (TypeError, ValueError, KeyError, AttributeError) as err:
                problem = f"malformed ({type(err).__name__}: {err})"
            if problem:
                raise Corrupt(f"checkpoint unusable: {problem}")
            return state

        return read_verified(self.path, decode)

    def clear(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as err:
            warnings.warn(f"checkpoint {self.path} could not be removed ({err})", StoreWarning,
                          stacklevel=2)


class RunStore:
    """A directory of results keyed by ``(kind, key)``; ``kind`` groups e.g. runs, slices.

    Args:
        root: the store folder (default :func:`default_root`).
        fallback: where results go that cannot be written under ``root`` (default: a new
            ``eoslab-unsaved-*`` folder in the system's temporary directory).
    """

    def __init__(self, root: str | Path | None = None, fallback: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()
        self.fallback = Path(fallback) if fallback is not None else None

    def path(self, kind: str, key: str) -> Path:
        for part in (kind, key):
            if not part or any(c in part for c in "/\\") or part.startswith("."):
                raise ValueError(f"store name part {part!r} is not allowed; use a plain name")
        return self.root / kind / key

    def check_writable(self, kind: str = "runs") -> None:
        """Raise :class:`StoreError` naming the path unless ``<root>/<kind>`` can be written.

        Call it before long work whose result goes to the store: a store that is a file,
        under a file, or in a read-only folder is reported at once, not after training.
        """
        folder = self.path(kind, "x").parent
        if self.root.exists() and not self.root.is_dir():
            raise StoreError(f"the store {self.root} is a file, not a folder; set EOSLAB_STORE "
                             f"to a folder (or run without the store)")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-test-")
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise StoreError(f"the store folder {folder} cannot be written "
                             f"({err.strerror or err}); set EOSLAB_STORE to a writable folder "
                             f"(or run without the store)") from err

    def _write(self, kind: str, key: str, name: str, data: bytes) -> Path:
        """Write ``data`` to ``<kind>/<key>/<name>``, or to the fallback folder on OSError."""
        target = self.path(kind, key) / name
        try:
            atomic_write_bytes(target, data)
            return target
        except OSError as err:
            problem = err
        try:
            base = self.fallback or Path(tempfile.mkdtemp(prefix="eoslab-unsaved-"))
            kept = base / kind / key / name
            atomic_write_bytes(kept, data)
        except OSError as err:
            raise StoreError(f"{target} could not be written ({problem}), nor the fallback "
                             f"copy ({err})") from problem
        warnings.warn(f"{target} could not be written ({problem}); the result is kept at "
                      f"{kept} instead ({base} has the store's layout: copy its contents into "
                      f"the store to reuse it)", StoreWarning, stacklevel=3)
        return kept

    def save_json(self, kind: str, key: str, blob) -> Path:
        """Store ``blob`` (JSON-ready) with its checksum; returns the file written.

        That is ``<root>/<kind>/<key>/result.json``, or a fallback copy (with a
        :class:`StoreWarning`) when the store cannot be written; :class:`StoreError` when
        neither can.
        """
        return self._write(kind, key, "result.json", encode_json(blob))

    def cached(self, kind: str, parts: dict, compute: Callable[[], dict]) -> dict:
        """The stored result for ``parts``, or ``compute()`` saved under :func:`result_key`.

        Args:
            kind: the store folder, e.g. ``"slices"``, ``"planes"``, ``"curves"``.
            parts: everything the result depends on (tensors, models, seeds, grids).
            compute: returns a JSON-ready dict.
        """
        key = result_key(**parts)
        blob = self.load_json(kind, key)
        if blob is None:
            blob = compute()
            self.save_json(kind, key, blob)
        return blob

    def load_json(self, kind: str, key: str):
        """The stored object, or ``None`` when absent or failing its checksum (moved aside)."""
        return read_verified(self.path(kind, key) / "result.json", decode_json)

    def save_tensors(self, kind: str, key: str, tensors: dict) -> Path:
        """Store a dict of tensors and plain values (loadable with ``weights_only=True``)."""
        data = encode_torch({k: v.detach().cpu() if torch.is_tensor(v) else v
                              for k, v in tensors.items()})
        return self._write(kind, key, "tensors.pt", data)

    def load_tensors(self, kind: str, key: str) -> dict | None:
        """The stored tensors, or ``None`` when absent or failing a check (moved aside)."""
        def decode(raw: bytes):
            tensors = decode_torch(raw)
            if not isinstance(tensors, dict):
                raise Corrupt(f"not a dict of tensors (a {type(tensors).__name__})")
            return tensors

        return read_verified(self.path(kind, key) / "tensors.pt", decode)

    def checkpointer(self, kind: str, key: str, every: int) -> Checkpointer:
        return Checkpointer(self.path(kind, key) / "checkpoint.pt", every)

    # -- training runs ------------------------------------------------------------------
    def save_run(self, config, run) -> Path:
        """Store a finished (or diverged) run under its config's key; returns the file."""
        return self.save_json("runs", config.key(),
                              {"config": config.to_dict(), "run": run.to_json()})

    def load_run(self, config):
        """The stored :class:`~eoslab.core.train.Run` of ``config``, or ``None``.

        A stored file that is not a well-formed run of ``config`` is moved aside (with a
        :class:`StoreWarning`) and ``None`` returned, so the run is trained again.
        """
        from eoslab.core.train import Run

        def decode(raw: bytes):
            blob = decode_json(raw)
            try:
                problem = run_problem(blob, config)
            except (TypeError, ValueError, KeyError, AttributeError) as err:
                problem = f"malformed ({type(err).__name__}: {err})"
            if problem:
                raise Corrupt(f"not a usable run: {problem}")
            return Run.from_json(blob["run"])

        return read_verified(self.path("runs", config.key()) / "result.json", decode)
