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
import io
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

__all__ = ["Checkpointer", "RunStore", "StoreError", "StoreWarning", "atomic_write_bytes",
           "default_root", "result_key"]

RESULT_FORMAT = "eoslab-result/1"
_TORCH_MAGIC = b"EOSLAB-TORCH/1 sha256="
_TORCH_HEADER = len(_TORCH_MAGIC) + 64 + 1  # magic, hex digest, newline


class StoreWarning(UserWarning):
    """A stored file was unreadable and moved aside, or a result was saved elsewhere."""


class StoreError(OSError, ValueError):
    """The store cannot be used (it is a file, read-only, ...); the message names the path."""


class _Corrupt(Exception):
    """A stored file failed its check; the message says how."""


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


# -- checksummed encodings -----------------------------------------------------------------
def _json_digest(data) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _encode_json(blob) -> bytes:
    data = json.loads(json.dumps(blob, allow_nan=True))  # what a reader will see
    envelope = {"format": RESULT_FORMAT, "sha256": _json_digest(data), "data": data}
    return json.dumps(envelope, allow_nan=True).encode()


def _decode_json(raw: bytes):
    if not raw.strip():
        raise _Corrupt("the file is empty")
    try:
        envelope = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise _Corrupt(f"not UTF-8 text (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise _Corrupt(f"not valid JSON, truncated or garbled ({err})") from None
    if (not isinstance(envelope, dict) or envelope.get("format") != RESULT_FORMAT
            or not isinstance(envelope.get("sha256"), str) or "data" not in envelope):
        raise _Corrupt(f"no {RESULT_FORMAT!r} checksum (written by an older eoslab or by "
                       f"hand, so it cannot be trusted)")
    if _json_digest(envelope["data"]) != envelope["sha256"]:
        raise _Corrupt("its sha256 checksum does not match its content (edited or corrupted)")
    return envelope["data"]


def _encode_torch(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    return _TORCH_MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def _decode_torch(raw: bytes):
    if not raw:
        raise _Corrupt("the file is empty")
    if not raw.startswith(_TORCH_MAGIC) or raw[_TORCH_HEADER - 1:_TORCH_HEADER] != b"\n":
        raise _Corrupt("no EOSLAB-TORCH/1 checksum header (garbage, or written by an older "
                       "eoslab or another program, so it is not loaded)")
    digest, payload = raw[len(_TORCH_MAGIC):_TORCH_HEADER - 1], raw[_TORCH_HEADER:]
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise _Corrupt("its sha256 checksum does not match its content (truncated, edited "
                       "or corrupted)")
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # any failure means the file is unusable
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise _Corrupt(f"torch.load(weights_only=True) refused it: {type(err).__name__}: "
                       f"{first[:200]}") from None


def _move_aside(file: Path, problem: str, seen: os.stat_result | None) -> bool:
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


def _read_verified(file: Path, decode: Callable[[bytes], object]):
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
        except _Corrupt as err:
            problem = str(err)
        except OSError as err:
            warnings.warn(f"{file}: could not be read ({err}); the result is computed again",
                          StoreWarning, stacklevel=3)
            return None
        if _move_aside(file, problem, seen):
            return None
    return None


# -- shape checks of stored runs and checkpoints ---------------------------------------------
def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _history_problem(history, below: int | None) -> str | None:
    if not isinstance(history, list):
        return f"history is a {type(history).__name__}, not a list of rows"
    last = -1
    for i, row in enumerate(history):
        if not isinstance(row, dict) or not _is_int(row.get("step")):
            return f"history row {i} is not a dict with an integer 'step'"
        if row["step"] <= last or (below is not None and row["step"] >= below):
            return f"history row {i} has step {row['step']} out of order"
        last = row["step"]
    if history and not _is_number(history[0].get("loss")):
        return "the first history row has no numeric 'loss'"
    return None


def _run_problem(blob, config) -> str | None:
    """Why ``blob`` is not a stored run of ``config``, or ``None`` when it is one."""
    if not isinstance(blob, dict) or not isinstance(blob.get("run"), dict):
        return f"not a stored run (a {type(blob).__name__} without a 'run' dict)"
    if isinstance(blob.get("config"), dict):
        from eoslab.core.config import TrainConfig

        try:
            same = TrainConfig.from_dict(blob["config"]).key() == config.key()
        except (ValueError, TypeError):
            same = False
        if not same:
            return "it holds the run of another config"
    run = blob["run"]
    problem = _history_problem(run.get("history"), config.steps + 1)
    if problem:
        return problem
    if run.get("status") not in ("finished", "diverged"):
        return f"status {run.get('status')!r} is not 'finished' or 'diverged'"
    done = run.get("steps_done")
    if not _is_int(done) or not 0 <= done <= config.steps:
        return f"steps_done {done!r} is not an integer in [0, {config.steps}]"
    at = run.get("diverged_at")
    if at is not None and not (isinstance(at, list) and len(at) == 2 and _is_int(at[0])
                               and _is_number(at[1])):
        return f"diverged_at {at!r} is not [step, loss]"
    if not _is_number(run.get("seconds", 0.0)):
        return "seconds is not a number"
    return None


def _tensors_problem(saved, expected: Mapping, what: str) -> str | None:
    if not isinstance(saved, Mapping) or set(saved) != set(expected):
        return f"its {what} has other entries than the model's"
    for name, ref in expected.items():
        t = saved[name]
        if not torch.is_tensor(t) or t.shape != ref.shape or t.dtype != ref.dtype:
            return (f"its {what} entry {name!r} is not a {ref.dtype} tensor of shape "
                    f"{tuple(ref.shape)}")
    return None


def _optimizer_problem(saved, optimizer) -> str | None:
    if (not isinstance(saved, dict) or not isinstance(saved.get("state"), dict)
            or not isinstance(saved.get("param_groups"), list)):
        return "its optimizer state is not an optimizer state_dict"
    groups = optimizer.param_groups
    if len(saved["param_groups"]) != len(groups):
        return "its optimizer has another number of parameter groups"
    shapes = {}
    for group, ours in zip(saved["param_groups"], groups):
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or len(ids) != len(ours["params"]):
            return "its optimizer has another number of parameters"
        shapes.update({i: p.shape for i, p in zip(ids, ours["params"])})
    for i, values in saved["state"].items():
        if i not in shapes or not isinstance(values, dict):
            return f"its optimizer state names an unknown parameter {i!r}"
        for name, value in values.items():
            if torch.is_tensor(value) and value.dim() > 0 and value.shape != shapes[i]:
                return f"its optimizer state {name!r} of parameter {i} has the wrong shape"
    return None


def _batches_problem(saved) -> str | None:
    if saved is None:
        return None
    if (not isinstance(saved, dict) or not torch.is_tensor(saved.get("rng"))
            or saved["rng"].dtype != torch.uint8
            or saved["rng"].shape != torch.Generator().get_state().shape
            or not torch.is_tensor(saved.get("order")) or not _is_int(saved.get("pos"))
            or saved["pos"] < 0):
        return "its minibatch state is malformed"
    return None


def checkpoint_problem(state, max_step: int | None = None, model: nn.Module | None = None,
                       optimizer: torch.optim.Optimizer | None = None) -> str | None:
    """Why ``state`` cannot resume a run, or ``None`` when it can.

    A training checkpoint (see :func:`eoslab.core.train.fit`) is a dict with ``model`` and
    ``optimizer`` state dicts, ``history`` (rows with increasing integer ``step`` below
    ``step``), ``step`` in ``[0, max_step]``, and optional ``scheduler`` and ``batches``.
    Given ``model`` / ``optimizer``, their parameter names, shapes and dtypes must match.
    """
    if not isinstance(state, dict):
        return f"not a training state (a {type(state).__name__})"
    missing = [k for k in ("model", "optimizer", "history", "step") if k not in state]
    if missing:
        return f"not a training state (missing {', '.join(missing)})"
    step = state["step"]
    if not _is_int(step) or step < 0:
        return f"its step {step!r} is not an integer >= 0"
    if max_step is not None and step > max_step:
        return f"its step {step} is beyond the run's {max_step} steps"
    problem = _history_problem(state["history"], step)
    if problem is None and not isinstance(state["model"], Mapping):
        problem = "its model state is not a state_dict"
    if problem is None and model is not None:
        problem = _tensors_problem(state["model"], model.state_dict(), "model state")
    if problem is None and optimizer is not None:
        problem = _optimizer_problem(state["optimizer"], optimizer)
    if problem is None and not isinstance(state.get("scheduler"), (dict, type(None))):
        problem = "its scheduler state is not a dict"
    return problem or _batches_problem(state.get("batches"))


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
        data = _encode_torch(state)
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
            state = _decode_torch(raw)
            try:
                problem = checkpoint_problem(state, max_step, model, optimizer)
            except (TypeError, ValueError, KeyError, AttributeError) as err:
                problem = f"malformed ({type(err).__name__}: {err})"
            if problem:
                raise _Corrupt(f"checkpoint unusable: {problem}")
            return state

        return _read_verified(self.path, decode)

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
        return self._write(kind, key, "result.json", _encode_json(blob))

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
        return _read_verified(self.path(kind, key) / "result.json", _decode_json)

    def save_tensors(self, kind: str, key: str, tensors: dict) -> Path:
        """Store a dict of tensors and plain values (loadable with ``weights_only=True``)."""
        data = _encode_torch({k: v.detach().cpu() if torch.is_tensor(v) else v
                              for k, v in tensors.items()})
        return self._write(kind, key, "tensors.pt", data)

    def load_tensors(self, kind: str, key: str) -> dict | None:
        """The stored tensors, or ``None`` when absent or failing a check (moved aside)."""
        def decode(raw: bytes):
            tensors = _decode_torch(raw)
            if not isinstance(tensors, dict):
                raise _Corrupt(f"not a dict of tensors (a {type(tensors).__name__})")
            return tensors

        return _read_verified(self.path(kind, key) / "tensors.pt", decode)

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
            blob = _decode_json(raw)
            try:
                problem = _run_problem(blob, config)
            except (TypeError, ValueError, KeyError, AttributeError) as err:
                problem = f"malformed ({type(err).__name__}: {err})"
            if problem:
                raise _Corrupt(f"not a usable run: {problem}")
            return Run.from_json(blob["run"])

        return _read_verified(self.path("runs", config.key()) / "result.json", decode)
