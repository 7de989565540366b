"""The playground's run list: every run it trained or read back, to pick, overlay, remove.

An :class:`Entry` is one run: its config (``None`` for a user's own module), its history
rows as they arrive, the curvature/threshold rows of :func:`~eoslab.ui.playground.choices.
edge_rows`, its status and where it came from. :class:`RunList` keeps them in order,
labels each by the settings in which it differs from the others
(:func:`~eoslab.ui.playground.choices.run_label`) and says which are shown.

    >>> from eoslab.core.config import TrainConfig
    >>> runs = RunList()
    >>> a = runs.add(Entry("a", TrainConfig(lr=0.1)))
    >>> b = runs.add(Entry("b", TrainConfig(lr=0.2)))
    >>> [runs.label(e) for e in runs.entries]
    ['gd lr=0.1', 'gd lr=0.2']
    >>> runs.remove(["a"]); [e.key for e in runs.shown()]
    ['b']
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from eoslab.core.config import TrainConfig
from eoslab.ui.playground.choices import edge_rows, run_label

__all__ = ["Entry", "RunList"]


@dataclass
class Entry:
    """One run of the list.

    Attributes:
        key: its id (the config's store key, or a counter for a user's module).
        config: its :class:`TrainConfig` (``None`` for a user's own module).
        history: rows recorded so far.
        edges: curvature and threshold rows (``run`` left empty; filled when drawn).
        status: ``"training"``, ``"paused"``, ``"finished"``, ``"diverged"``, ``"stopped"``.
        diverged_at: ``(step, loss)`` when diverged.
        from_store: whether it was read back from the store instead of trained.
        snapshots: the :class:`~eoslab.ui.playground.slices.Snapshots` of a run trained
            here (``None`` for a stored run).
        name: a label for a user's module run.
    """

    key: str
    config: TrainConfig | None
    history: list = field(default_factory=list)
    edges: list = field(default_factory=list)
    status: str = "training"
    diverged_at: tuple | None = None
    from_store: bool = False
    snapshots: object = None
    name: str = ""
    edge_of: object = None

    def add_row(self, row: dict) -> None:
        """Append a recorded row (and its curvature/threshold rows)."""
        self.history.append(row)
        if self.config is not None:
            self.edges.extend(edge_rows(self.config, [row]))
        elif self.edge_of is not None:
            self.edges.extend(self.edge_of(row))

    def set_history(self, rows: list[dict]) -> None:
        self.history, self.edges = [], []
        for row in rows:
            self.add_row(row)


class RunList:
    """Runs in the order they were added; the ``selected`` keys are drawn."""

    def __init__(self):
        self.entries: list[Entry] = []
        self.selected: list[str] = []
        self._lock = threading.Lock()

    def add(self, entry: Entry, select: bool = True) -> Entry:
        """Add ``entry`` (replacing one with its key) and select it."""
        with self._lock:
            self.entries = [e for e in self.entries if e.key != entry.key] + [entry]
            if select and entry.key not in self.selected:
                self.selected.append(entry.key)
        return entry

    def get(self, key: str) -> Entry | None:
        return next((e for e in self.entries if e.key == key), None)

    def remove(self, keys) -> None:
        """Drop runs from the list (the store keeps them)."""
        keys = set(keys)
        with self._lock:
            self.entries = [e for e in self.entries if e.key not in keys]
            self.selected = [k for k in self.selected if k not in keys]

    def select(self, keys) -> None:
        known = {e.key for e in self.entries}
        with self._lock:
            self.selected = [k for k in keys if k in known]

    def shown(self) -> list[Entry]:
        with self._lock:
            return [e for e in self.entries if e.key in self.selected]

    def label(self, entry: Entry) -> str:
        """``entry``'s label: its distinguishing settings (module docs)."""
        if entry.config is None:
            return entry.name or entry.key
        others = [e.config for e in self.entries if e.config is not None]
        return run_label(entry.config, others)

    def options(self) -> list[tuple[str, str]]:
        """``(label with status, key)`` for a selection widget."""
        out = []
        for e in self.entries:
            extra = " (from the store)" if e.from_store else ""
            out.append((f"{self.label(e)} [{e.status}]{extra}", e.key))
        return out

    def drawn(self) -> list[tuple[str, list, list]]:
        """``(label, history, edges)`` of the shown runs, for the chart's datasets."""
        return [(self.label(e), list(e.history), list(e.edges)) for e in self.shown()]
