"""Checksummed store files: atomic writes, verified reads, and bad files moved aside.

Every write is atomic: the bytes go to a temporary file in the same directory, are
flushed and fsync'ed, then ``os.replace`` moves them over the target in one step, so a
write killed half-way leaves the previous file (or none), never a truncated one.

Every file carries a SHA-256 checksum of its content and is verified when read:

* JSON results are ``{"format": "eoslab-result/1", "sha256": h, "data": blob}`` where
  ``h`` hashes the canonical JSON of ``blob`` (sorted keys, no spaces);
* tensor files are the line ``EOSLAB-TORCH/1 sha256=<h>`` followed by the bytes of
  :func:`torch.save`, loaded with ``torch.load(weights_only=True)``: only tensors and plain
  containers, never arbitrary pickled objects (which could run code).

A file that fails its check is reported in a :class:`StoreWarning` naming its path,
renamed to ``<name>.corrupt-<timestamp>`` beside it, and read as absent.

Example:
    >>> blob = decode_json(encode_json({"loss": [1.0, 0.5]}))
    >>> blob
    {'loss': [1.0, 0.5]}
    >>> decode_json(b'{"loss": [1.0]}')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    eoslab.core.store_files.Corrupt: no 'eoslab-result/1' checksum (written by an older ...
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ["RESULT_FORMAT", "Corrupt", "StoreWarning", "atomic_write_bytes", "decode_json",
           "decode_torch", "encode_json", "encode_torch", "read_verified"]

RESULT_FORMAT = "eoslab-result/1"
_TORCH_MAGIC = b"EOSLAB-TORCH/1 sha256="
_TORCH_HEADER = len(_TORCH_MAGIC) + 64 + 1  # magic, hex digest, newline


class StoreWarning(UserWarning):
    """A stored file was unreadable and moved aside, or a result was saved elsewhere."""


class StoreError(OSError, ValueError):
    """The store cannot be used (it is a file, read-only, ...); the message names the path."""


class Corrupt(Exception):
    """A stored file failed its check; the message says how."""


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


def json_digest(data) -> str:
    """SHA-256 of the canonical JSON of ``data`` (sorted keys, no spaces)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def encode_json(blob) -> bytes:
    """``blob`` as JSON in its checksummed envelope."""
    data = json.loads(json.dumps(blob, allow_nan=True))  # what a reader will see
    envelope = {"format": RESULT_FORMAT, "sha256": json_digest(data), "data": data}
    return json.dumps(envelope, allow_nan=True).encode()


def decode_json(raw: bytes):
    """The data of a checksummed JSON envelope; :class:`Corrupt` if it fails its check."""
    if not raw.strip():
        raise Corrupt("the file is empty")
    try:
        envelope = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise Corrupt(f"not UTF-8 text (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise Corrupt(f"not valid JSON, truncated or garbled ({err})") from None
    if (not isinstance(envelope, dict) or envelope.get("format") != RESULT_FORMAT
            or not isinstance(envelope.get("sha256"), str) or "data" not in envelope):
        raise Corrupt(f"no {RESULT_FORMAT!r} checksum (written by an older eoslab or by "
                       f"hand, so it cannot be trusted)")
    if json_digest(envelope["data"]) != envelope["sha256"]:
        raise Corrupt("its sha256 checksum does not match its content (edited or corrupted)")
    return envelope["data"]


def encode_torch(obj) -> bytes:
    """``torch.save(obj)`` bytes behind a checksum header."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    return _TORCH_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def decode_torch(raw: bytes):
    """Tensors of a checksummed file, loaded with ``weights_only=True``; else :class:`Corrupt`."""
    if not raw:
        raise Corrupt("the file is empty")
    if not raw.startswith(_TORCH_MAGIC) or raw[_TORCH_HEADER - 1:_TORCH_HEADER] != b"\n":
        raise Corrupt("no EOSLAB-TORCH/1 checksum header (garbage, or written by an older "
                       "eoslab or another program, so it is not loaded)")
    digest, payload = raw[len(_TORCH_MAGIC):_TORCH_HEADER - 1], raw[_TORCH_HEADER:]
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise Corrupt("its sha256 checksum does not match its content (truncated, edited "
                       "or corrupted)")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # any failure means the file is unusable
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise Corrupt(f"torch.load(weights_only=True) refused it: {type(err).__name__}: "
                       f"{first[:200]}") from None


def move_aside(file: Path, problem: str, seen: os.stat_result | None) -> bool:
    """Rename a bad ``file`` to ``<name>.corrupt-<stamp>``; False if it changed meanwhile."""
    try:
        now = os.stat(file)
    except FileNotFoundError:
        return True  # another process moved it already
    except OSError:
        now = None
    if seen is not None and now is not None and (now.st_ino, now.st_size, now.st_mtime_ns) != (
            seen.st_ino, seen.st_size, seen.st_mtime_ns):
        return False  # replaced by a writer since we read it: read it again
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target, n = file.with_name(f"{file.name}.corrupt-{stamp}"), 0
    while target.exists():
        n += 1
        target = file.with_name(f"{file.name}.corrupt-{stamp}-{n}")
    try:
        os.rename(file, target)
    except FileNotFoundError:
        return True
    except OSError as err:
        warnings.warn(f"{file}: {problem}; it could not be moved aside ({err}), so it is "
                      f"ignored and the result is computed again", StoreWarning, stacklevel=4)
        return True
    warnings.warn(f"{file}: {problem}; moved aside to {target} and computing the result "
                  f"again", StoreWarning, stacklevel=4)
    return True


def read_verified(file: Path, decode: Callable[[bytes], object]):
    """``decode(bytes of file)``, or ``None`` when absent or bad (a bad file is moved aside)."""
    for _ in range(3):
        seen = None
        try:
            with open(file, "rb") as handle:
                seen = os.fstat(handle.fileno())
                raw = handle.read()
            return decode(raw)
        except (FileNotFoundError, NotADirectoryError):  # absent, or a folder above is a file
            return None
        except IsADirectoryError:
            problem = "it is a directory, not a file"
        except Corrupt as err:
            problem = str(err)
        except OSError as err:
            warnings.warn(f"{file}: could not be read ({err}); the result is computed again",
                          StoreWarning, stacklevel=3)
            return None
        if move_aside(file, problem, seen):
            return None
    return None
