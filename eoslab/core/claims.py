"""Claim files: one worker at a time trains a key of a shared store.

Several processes, on one machine or on many sharing the store's directory (NFS, a cluster
file system), may be asked for the same config.  Before training key ``k`` a worker
*claims* it by creating ``<root>/<kind>/<k>/claim.json`` with
``os.open(O_CREAT | O_EXCL)``: of any number of simultaneous creators exactly one succeeds
(local file systems, and NFS v3 and later, where the exclusive create is decided by the
server).  The file names its owner (``host``, ``boot_id``, ``pid``, the process's start
time) and a random ``token``.

*Lease.*  While the owner works, a heartbeat thread touches the file every ``lease / 4``
seconds.  A claim is *stale* when its last touch is older than ``lease`` seconds by the file
server's clock (a temporary file's modification time, so hosts need not agree on the time),
or at once when its owner is a process of this machine that no longer runs.  A stale claim
is taken over: it is renamed to a unique name (of several contenders one rename wins), the
moved file is checked to be the one judged stale (same inode and modification time; a
fresh claim moved by mistake is linked back), and the taker creates its own claim with
``O_EXCL`` again.

*Protocol of a worker* (:func:`eoslab.core.sweep_plan.settle`, and
:func:`eoslab.core.experiment.run` with ``lease``):

1. the result is in the store: done;
2. claim the key; if another worker holds it, wait for its result, polling, and take the
   claim over if it goes stale (its owner died);
3. with the claim, look in the store again (the previous owner may have finished between
   1 and 2), train, save the result atomically (``os.replace``, see
   :mod:`eoslab.core.store`), and only then release the claim.

So a result is never written twice by two live workers, and readers see a whole result or
none.  A worker killed mid-run leaves a claim without a result; the next worker takes it
over (at once on the same machine, after ``lease`` seconds elsewhere) and trains it.

Example:
    >>> import tempfile
    >>> from eoslab.core.store import RunStore
    >>> claims = Claims(RunStore(tempfile.mkdtemp()), lease=30)
    >>> first = claims.acquire("abc")
    >>> claims.acquire("abc") is None, claims.holder("abc")["pid"] == os.getpid()
    (True, True)
    >>> claims.release(first)
    >>> claims.holder("abc") is None
    True
    >>> claims.close()
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_LEASE", "Claim", "Claims", "claimed", "owner_identity"]

DEFAULT_LEASE = 120.0
CLAIM_FILE = "claim.json"


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (Linux), else ``None``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _start_time(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def owner_identity() -> dict:
    """Who this process is, as a claim records it."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot_id": _boot_id(), "pid": pid,
            "start": _start_time(pid)}


def _alive_here(owner: dict) -> bool | None:
    """Whether ``owner`` still runs, if it is a process of this machine; else ``None``."""
    me = owner_identity()
    if owner.get("host") != me["host"] or owner.get("boot_id") != me["boot_id"]:
        return None
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    if fields is None:
        return os.path.exists(f"/proc/{pid}") or not os.path.isdir("/proc")
    if fields[0] in ("Z", "X"):  # a zombie: killed, not yet reaped
        return False
    start = owner.get("start")
    return start is None or int(fields[19]) == start  # a reused pid is another process


@dataclass
class Claim:
    """A claim this process holds; ``lost`` turns true if another worker took it over."""

    key: str
    path: Path
    token: str
    lost: bool = field(default=False, compare=False)


class Claims:
    """Claims on the keys of one ``kind`` of a :class:`~eoslab.core.store.RunStore`.

    Args:
        store: the (shared) store.
        kind: the store folder the keys live in.
        lease: seconds without a heartbeat after which another worker may take a claim over.
    """

    def __init__(self, store, kind: str = "runs", lease: float = DEFAULT_LEASE):
        if not (isinstance(lease, (int, float)) and lease > 0 and lease != float("inf")):
            raise ValueError(f"lease={lease!r} is not allowed; use a number of seconds > 0")
        self.store, self.kind, self.lease = store, kind, float(lease)
        self._held: dict[str, Claim] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._offset: tuple[float, float] | None = None  # (file server - local clock, when)

    def path(self, key: str) -> Path:
        return self.store.path(self.kind, key) / CLAIM_FILE

    # -- reading -----------------------------------------------------------------------
    def _fs_now(self, directory: Path) -> float:
        """The file server's current time, from its offset to this machine's clock.

        The offset is the modification time of a fresh file in ``directory`` minus
        ``time.time()``, measured again at most every ``lease / 4`` seconds.
        """
        now = time.time()
        if self._offset is None or now - self._offset[1] > self.lease / 4:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".clock-")
            try:
                self._offset = (os.fstat(fd).st_mtime - time.time(), now)
            finally:
                os.close(fd)
                os.unlink(tmp)
        return time.time() + self._offset[0]

    def holder(self, key: str) -> dict | None:
        """The claim on ``key`` (owner fields, ``age`` in seconds, ``stale``), or ``None``."""
        path = self.path(key)
        try:
            stat = path.stat()
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            info = json.loads(text)
        except json.JSONDecodeError:
            info = {}  # being written right now, or a foreign partial file
        info = info if isinstance(info, dict) else {}
        age = max(0.0, self._fs_now(path.parent) - stat.st_mtime)
        alive = _alive_here(info.get("owner", {})) if info else None
        info.update(age=age, stale=alive is False or (alive is None and age > self.lease),
                    _stat=(stat.st_ino, stat.st_mtime_ns))
        info.update(info.pop("owner", {}))
        return info

    # -- acquiring ---------------------------------------------------------------------
    def _create(self, key: str) -> Claim | None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        token = uuid.uuid4().hex
        blob = json.dumps({"owner": owner_identity(), "token": token, "lease": self.lease,
                           "created": time.time()}).encode()
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return None
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        return Claim(key, path, token)

    def _take_over(self, key: str, seen: tuple[int, int]) -> bool:
        """Remove the stale claim ``seen`` (inode, mtime); ``False`` if it changed meanwhile."""
        path = self.path(key)
        tomb = path.with_name(f".{path.name}.{uuid.uuid4().hex}.stale")
        try:
            os.rename(path, tomb)
        except FileNotFoundError:
            return True  # another worker removed it; try to create ours
        stat = tomb.stat()
        if (stat.st_ino, stat.st_mtime_ns) != seen:  # we moved a fresh claim: put it back
            with contextlib.suppress(FileExistsError):
                os.link(tomb, path)
            tomb.unlink()
            return False
        tomb.unlink()
        return True

    def acquire(self, key: str) -> Claim | None:
        """Claim ``key``, taking over a stale claim; ``None`` if a live worker holds it."""
        claim = self._create(key)
        if claim is None:
            info = self.holder(key)
            if info is not None and not info["stale"]:
                return None
            if info is not None and not self._take_over(key, info["_stat"]):
                return None
            claim = self._create(key)
            if claim is None:
                return None
        with self._lock:
            self._held[key] = claim
        self._start_heartbeat()
        return claim

    def owns(self, claim: Claim) -> bool:
        """Whether ``claim``'s file is still this claim (not taken over)."""
        try:
            return json.loads(claim.path.read_text()).get("token") == claim.token
        except (FileNotFoundError, json.JSONDecodeError, AttributeError):
            return False

    def release(self, claim: Claim) -> None:
        """Give ``claim`` up (after the result is saved); a lost claim is left alone."""
        with self._lock:
            self._held.pop(claim.key, None)
        if self.owns(claim):
            claim.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Release every claim still held and stop the heartbeat."""
        for claim in list(self._held.values()):
            self.release(claim)
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._wake.clear()

    def __enter__(self) -> Claims:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- heartbeat ---------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._beat, name="eoslab-claims",
                                            daemon=True)
            self._thread.start()

    def renew(self) -> None:
        """Touch every held claim now; mark the ones another worker took over as lost."""
        with self._lock:
            held = list(self._held.values())
        for claim in held:
            if self.owns(claim):
                with contextlib.suppress(FileNotFoundError):
                    os.utime(claim.path)
            else:
                claim.lost = True

    def _beat(self) -> None:
        while not self._wake.wait(self.lease / 4):
            if not self._held:
                continue
            self.renew()


def claimed(store, key: str, compute, *, ready=None, lease: float = DEFAULT_LEASE,
            poll: float = 0.5, kind: str = "runs"):
    """``compute()`` while holding the claim on ``key``, once no live worker holds it.

    While another worker holds the claim, wait (polling every ``poll`` seconds); if
    ``ready()`` turns true meanwhile (that worker stored the result), call ``compute()``
    without the claim: it is expected to read the stored result.  A stale claim is taken
    over.  The claim is released when ``compute`` returns or raises.
    """
    with Claims(store, kind, lease) as claims:
        while True:
            claim = claims.acquire(key)
            if claim is not None:
                try:
                    return compute()
                finally:
                    claims.release(claim)
            if ready is not None and ready():
                return compute()
            time.sleep(poll)
