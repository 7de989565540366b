"""Results on disk, keyed by a hash of the experiment's configuration.

Layout: ``<root>/<kind>/<key>/`` holds ``result.json`` (config + run) and, while a run is
in progress, ``checkpoint.pt``.  ``root`` is ``$EOSLAB_STORE`` or ``~/.cache/eoslab``.

Every write is atomic: the bytes go to a temporary file in the same directory, are
flushed and fsync'ed, then ``os.replace`` moves them over the target in one step.  A
write killed half-way leaves the previous file (or none), never a truncated one.

Example:
    >>> import tempfile
    >>> store = RunStore(tempfile.mkdtemp())
    >>> store.save_json("slices", "abc", {"x": [1, 2]})
    >>> store.load_json("slices", "abc")
    {'x': [1, 2]}
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

__all__ = ["Checkpointer", "RunStore", "atomic_write_bytes", "default_root", "result_key"]


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class Checkpointer:
    """Saves a training state every ``every`` steps to ``path`` (atomically)."""

    def __init__(self, path: Path, every: int):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"checkpoint every={every!r} is not allowed; use an integer >= 1")
        self.path, self.every = Path(path), every

    def save(self, state: dict) -> None:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        atomic_write_bytes(self.path, buffer.getvalue())

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=False)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class RunStore:
    """A directory of results keyed by ``(kind, key)``; ``kind`` groups e.g. runs, slices."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()

    def path(self, kind: str, key: str) -> Path:
        for part in (kind, key):
            if not part or any(c in part for c in "/\\") or part.startswith("."):
                raise ValueError(f"store name part {part!r} is not allowed; use a plain name")
        return self.root / kind / key

    def save_json(self, kind: str, key: str, blob) -> None:
        data = json.dumps(blob, allow_nan=True).encode()
        atomic_write_bytes(self.path(kind, key) / "result.json", data)

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
        """The stored object, or ``None`` when absent or unreadable (a foreign partial file)."""
        file = self.path(kind, key) / "result.json"
        try:
            return json.loads(file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def save_tensors(self, kind: str, key: str, tensors: dict) -> None:
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() if torch.is_tensor(v) else v
                    for k, v in tensors.items()}, buffer)
        atomic_write_bytes(self.path(kind, key) / "tensors.pt", buffer.getvalue())

    def load_tensors(self, kind: str, key: str) -> dict | None:
        file = self.path(kind, key) / "tensors.pt"
        if not file.exists():
            return None
        return torch.load(file, map_location="cpu", weights_only=False)

    def checkpointer(self, kind: str, key: str, every: int) -> Checkpointer:
        return Checkpointer(self.path(kind, key) / "checkpoint.pt", every)

    # -- training runs ------------------------------------------------------------------
    def save_run(self, config, run) -> None:
        """Store a finished (or diverged) run under its config's key."""
        self.save_json("runs", config.key(), {"config": config.to_dict(), "run": run.to_json()})

    def load_run(self, config):
        """The stored :class:`~eoslab.core.train.Run` of ``config``, or ``None``."""
        from eoslab.core.train import Run

        blob = self.load_json("runs", config.key())
        return None if blob is None else Run.from_json(blob["run"])
