"""The playground: any data, model, loss and optimiser, trained live with their sharpness.

``Playground()`` shows menus for the data, model, loss, optimiser (with only its own
hyperparameters), step size, schedule, steps and sharpness cadence; Run trains
:func:`eoslab.run` of the :class:`~eoslab.core.config.TrainConfig` they name
(:mod:`eoslab.ui.playground.choices`) in a background thread, and the chart shows the loss,
accuracy, the optimiser's curvature against *its* stability threshold, the top-k
eigenvalues and the trace as rows arrive. Every run goes to the run list (pick to overlay,
Remove to drop); a run whose settings the store already holds comes back from the store at
once. At any step where parameters were kept (the sharpness cadence) the slices along the
top eigenvector and the gradient are computed in the background
(:mod:`eoslab.ui.playground.slices`).

``Playground(model=net, data=(x, y), loss="mse", optimizer=opt)`` shows the same views
for a user's own module (:mod:`eoslab.ui.playground.user`; not stored).

The lifecycle is :class:`~eoslab.ui.app.ChapterApp`'s: a
:class:`~eoslab.ui.base.BackgroundRunner` (a new run cancels the old one), a throttled
:class:`~eoslab.ui.base.LiveChart` whose datasets are swapped in place,
:class:`~eoslab.ui.base.RunControls`, and no exception out of a widget callback (the status
line names it). Pause makes the training thread wait inside its row callback; Stop ends it.
The status line says ``training``, ``paused at step t``, ``finished``, ``diverged at step t
(loss ...)``, ``stopped at step t``, and ``(from the store)`` for a stored run.

    >>> app = Playground(store=False, chart_mode="svg")
    >>> app.set(optimizer="adam", lr=0.001, n_train=64, width=16, steps=10)
    >>> app.config().optimizer
    'adam'
"""

from __future__ import annotations

import html
import threading

import ipywidgets as widgets

from eoslab.core.store import RunStore
from eoslab.ui.base import BackgroundRunner, LiveChart, RunControls, Throttle
from eoslab.ui.export import ExportControls, config_code
from eoslab.ui.playground import charts
from eoslab.ui.playground.controls import ViewControls, make_settings, read, show_relevant
from eoslab.ui.playground.runs import Entry, RunList
from eoslab.ui.playground.slices import Snapshots, compute_slices
from eoslab.ui.playground.training import train_config, train_user

__all__ = ["Playground"]


class Playground:
    """The playground app (module docs).

    Args:
        model, data, loss, optimizer: a user's own ``nn.Module``, ``(x, y)`` tensors, loss
            name or :class:`~eoslab.core.losses.Loss`, and ``torch.optim`` optimiser; all
            ``None`` for the menus of the built-in problems.
        store: a :class:`RunStore`, ``None`` for the user's store, ``False`` for none.
        chart_mode: ``"auto"``, ``"jupyter"`` or ``"svg"`` (see :class:`LiveChart`).
        throttle: least seconds between two chart updates while a run streams.
        defaults: first values of the menus (names of
            :data:`~eoslab.ui.playground.choices.DEFAULTS`).

    Attributes:
        runs: the :class:`RunList`; ``current``: the entry of the last run started.
        datasets: the chart's current datasets; ``slices``: the slice chart's.
    """

    def __init__(self, model=None, data=None, loss="mse", optimizer=None, *,
                 store: RunStore | None | bool = None, chart_mode: str = "auto",
                 throttle: float = 0.25, defaults: dict | None = None):
        self.user = None
        if model is not None or data is not None or optimizer is not None:
            from eoslab.ui.playground.user import UserProblem

            self.user = UserProblem(model, data, loss, optimizer)
            store = False
        self.store = store
        self.settings = make_settings(defaults)
        self.view = ViewControls()
        self.controls = RunControls()
        self.runner = BackgroundRunner(on_error=self._on_error)
        self.slicer = BackgroundRunner(on_error=self._on_slice_error)
        self.runs, self.current = RunList(), None
        self._go = threading.Event()
        self._go.set()
        self._lock = threading.Lock()
        self.chart = LiveChart(charts.history_layout(), mode=chart_mode)
        self.slice_chart = LiveChart(charts.slice_layout(), mode=chart_mode)
        self.exports = ExportControls("playground")
        for chart in (self.chart, self.slice_chart):
            if chart.mode == "jupyter":  # legends as SVG text: readable, selectable, testable
                chart.widget.embed_options = {**chart.widget.embed_options, "renderer": "svg"}
        self.datasets: dict = {"history": [], "edge": [], "spectrum": []}
        self.slices: dict = {"slice1d": [], "slice2d": []}
        self._draw_throttled = Throttle(self._draw, throttle)
        self._wire()
        show_relevant(self.settings)
        self.widget = widgets.VBox(self._arrange())
        self.widget.add_class("eoslab-app")
        self.widget.add_class("eoslab-playground")
        self.controls.say("choose the settings and press Run" if self.user is None else
                          "your model: press Run (runs of your own module are not stored)")

    # -- layout --------------------------------------------------------------------------
    def _wire(self) -> None:
        self.controls.run.on_click(lambda _: self._safe(self.run))
        self.controls.stop.on_click(lambda _: self._safe(self.stop))
        self.view.pause.on_click(lambda _: self._safe(self.toggle_pause))
        self.view.remove.on_click(lambda _: self._safe(self.remove_selected))
        self.view.runs.observe(lambda c: self._safe(self.select, c["new"]), names="value")
        self.view.step.observe(lambda c: self._safe(self._on_step, c["new"]), names="value")
        for name in ("optimizer", "model", "dataset"):
            self.settings[name].observe(lambda _: show_relevant(self.settings), names="value")

    def _arrange(self) -> list:
        names = ["steps", "sharpness_every"] if self.user is not None else list(self.settings)
        boxes = [self.settings[n] for n in names] + [self.view.topk, self.view.trace]
        grid = widgets.GridBox(boxes, layout=widgets.Layout(
            grid_template_columns="repeat(3, 310px)"))
        buttons = widgets.HBox([self.controls.run, self.view.pause, self.controls.stop,
                                self.controls.progress])
        runs = widgets.HBox([self.view.runs, self.view.remove])
        slices = widgets.HBox([self.view.step, self.view.slice_status])
        return [grid, buttons, self.controls.status, runs, self.chart.widget,
                self.exports.widget, slices, self.slice_chart.widget]

    # -- settings ------------------------------------------------------------------------
    def values(self) -> dict:
        """The controls' current values."""
        return read(self.settings)

    def config(self):
        """The :class:`TrainConfig` of the controls (``ValueError`` if they are invalid)."""
        from eoslab.ui.playground.choices import config_from

        return config_from(self.values())

    def set(self, **values) -> None:
        """Set controls from Python.

        Names: those of :data:`~eoslab.ui.playground.choices.DEFAULTS`, ``k``, ``trace``.
        """
        for name, value in values.items():
            if name == "k":
                self.view.topk.value = value
            elif name == "trace":
                self.view.trace.value = value
            elif name in self.settings:
                self.settings[name].value = value
            else:
                raise ValueError(f"unknown control {name!r}; allowed: "
                                 f"{', '.join([*self.settings, 'k', 'trace'])}")

    def _store(self):
        return RunStore() if self.store is None else (self.store or None)

    # -- running -------------------------------------------------------------------------
    def run(self, wait: bool = False) -> None:
        """Train the current settings (cancelling a run in progress); ``wait`` blocks.

        Invalid settings: the status says why and nothing runs. Settings the store holds:
        the stored run is shown at once.
        """
        if self.runner.running and self.current is not None:
            self.current.status = "stopped"  # superseded: its thread ends at its next step
        self.runner.stop()
        self._go.set()
        if self.user is not None:
            entry = Entry(f"run {len(self.runs.entries) + 1}", None,
                          name=f"your model, run {len(self.runs.entries) + 1}",
                          edge_of=self.user.edge)
        else:
            try:
                config = self.config()
            except ValueError as err:
                self.controls.say(html.escape(f"invalid settings, nothing runs: {err}"))
                return
            entry = Entry(config.key(), config)
            store = self._store()
            stored = store.load_run(config) if store is not None else None
            if stored is not None:
                entry.from_store = True
                entry.status, entry.diverged_at = stored.status, stored.diverged_at
                entry.set_history(stored.history)
                self._add(entry)
                self.controls.say(html.escape(self._describe(entry)))
                self._offer(entry)
                return
        every = self._every()
        entry.snapshots = Snapshots(every)
        self._add(entry)
        self.controls.progress.max = max(self.values()["steps"], 1)
        self.controls.progress.value = 0
        self.controls.set_running(True)
        self.view.pause.disabled = False
        self.controls.say("training ...")
        job = self._job(entry)
        if wait:
            self.runner.run_sync(job)
        else:
            self.runner.start(job)

    def _every(self) -> int:
        values = self.values()
        return values["sharpness_every"] or max(1, min(10, values["steps"]))

    def _add(self, entry: Entry) -> None:
        self.current = entry
        self.runs.add(entry)
        self._refresh_list()
        self._draw()

    def _job(self, entry: Entry):
        values, k, trace = self.values(), self.view.topk.value, self.view.trace.value

        def job(stop: threading.Event, token: int) -> None:
            def on_row(row: dict) -> None:
                if not self.runner.current(token):
                    return
                entry.add_row(row)
                self.controls.progress.value = min(int(row["step"]),
                                                   self.controls.progress.max)
                self._draw_throttled(token)
                self._hold(stop, entry, row["step"])

            if self.user is not None:
                result = train_user(self.user, values, entry.snapshots, on_row, stop, k, trace)
            else:
                result = train_config(entry.config, self._store(), entry.snapshots, on_row,
                                      stop, k, trace)
            if not self.runner.current(token):
                return
            self._finish(entry, result)

        return job

    def _hold(self, stop: threading.Event, entry: Entry, step: int) -> None:
        """Pause: wait here (inside the row callback) until resumed or stopped."""
        if self._go.is_set():
            return
        entry.status = "paused"
        self.controls.say(f"paused at step {step}; press Resume")
        self._draw()
        while not self._go.wait(0.05):
            if stop.is_set():
                return
        entry.status = "training"
        self.controls.say("training ...")

    def _finish(self, entry: Entry, result) -> None:
        self._draw_throttled.flush()
        entry.status, entry.diverged_at = result.status, result.diverged_at
        self.controls.set_running(False)
        self.view.pause.disabled, self.view.pause.description = True, "Pause"
        self.controls.progress.value = self.controls.progress.max
        self._refresh_list()
        self._draw()
        self._refresh_steps()
        self.controls.say(html.escape(self._describe(entry)))
        self._offer(entry)

    def _offer(self, entry: Entry) -> None:
        """Offer the chart, the shown runs' rows and the code of ``entry`` for export.

        A stopped run offers nothing; a user's module has no config, so no code.
        """
        if entry.status not in ("finished", "diverged"):
            self.exports.clear()
            return
        rows = [{"run": self.runs.label(e), **row} for e in self.runs.shown()
                for row in e.history]
        code = config_code(entry.config) if entry.config is not None else None
        self.exports.update(chart=self.chart.spec, datasets={**self.datasets, "rows": rows},
                            code=code, name=f"playground-{self.runs.label(entry)}")

    @staticmethod
    def _describe(entry: Entry) -> str:
        last = entry.history[-1] if entry.history else {}
        if entry.status == "diverged" and entry.diverged_at:
            step, loss = entry.diverged_at
            text = f"diverged at step {step} (loss {loss:.3g})"
        elif entry.status == "stopped":
            text = f"stopped at step {last.get('step', 0)}"
        else:
            text = f"{entry.status}: loss {last.get('loss', float('nan')):.4g}"
            if last.get("acc") is not None:
                text += f", accuracy {last['acc']:.3f}"
        return text + (" (from the store)" if entry.from_store else "")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background run ends (``False`` on timeout); re-raises its error."""
        done = self.runner.wait(timeout)
        if self.runner.error is not None:
            raise self.runner.error
        return done

    def stop(self) -> None:
        """Ask the run to stop (a paused run too)."""
        self.runner.stop()
        self._go.set()
        if self.runner.running:
            self.controls.say("stopping ...")

    def pause(self) -> None:
        """Make the training thread wait at its next recorded row."""
        if self.runner.running:
            self._go.clear()
            self.view.pause.description = "Resume"

    def resume(self) -> None:
        self._go.set()
        self.view.pause.description = "Pause"

    def toggle_pause(self) -> None:
        self.resume() if not self._go.is_set() else self.pause()

    # -- the run list and the chart ------------------------------------------------------
    def select(self, keys) -> None:
        """Show the runs with these keys (the run list's selection)."""
        self.runs.select(list(keys))
        self._draw()

    def remove_selected(self) -> None:
        """Drop the selected runs from the list (the store keeps them)."""
        self.runs.remove(list(self.view.runs.value))
        self._refresh_list()
        self._draw()

    def _refresh_list(self) -> None:
        with self._lock:
            options, chosen = self.runs.options(), tuple(self.runs.selected)
            self.view.runs.unobserve_all("value")
            self.view.runs.options = options
            self.view.runs.value = tuple(k for k in chosen if k in dict(
                (v, v) for _, v in options))
            self.view.runs.observe(lambda c: self._safe(self.select, c["new"]),
                                   names="value")

    def _draw(self, token: int | None = None) -> None:
        if token is not None and not self.runner.current(token):
            return
        data = charts.history_datasets(self.runs.drawn())
        with self._lock:
            self.datasets = data
        self.chart.update(data)

    # -- slices --------------------------------------------------------------------------
    def _refresh_steps(self) -> None:
        entry = self.current
        steps = entry.snapshots.steps() if entry is not None and entry.snapshots else []
        self.view.step.options = steps
        if not steps:
            self.view.slice_status.value = "no parameters kept (a run from the store)" if (
                entry is not None and entry.from_store) else ""

    def _on_step(self, step) -> None:
        if step is not None:
            self.slice_at(step)

    def slice_at(self, step: int, wait: bool = False, span: float = 1.0, n: int = 21) -> dict:
        """Compute the slices at recorded ``step`` of the current run (in the background)."""
        entry = self.current
        if entry is None or entry.snapshots is None or entry.snapshots.objective is None:
            raise ValueError("no run with kept parameters; press Run first")
        base, objective = entry.snapshots.at(step), entry.snapshots.objective
        self.view.slice_status.value = f"computing the slices at step {step} ..."

        def job(stop, token):
            out = compute_slices(objective, base, span=span, n=n)
            if self.slicer.current(token):
                self.slices = {"slice1d": out["slice1d"], "slice2d": out["slice2d"]}
                self.slice_chart.update(self.slices)
                self.view.slice_status.value = (f"slices at step {step} (gradient norm "
                                                f"{out['grad_norm']:.3g})")

        self.slicer.run_sync(job) if wait else self.slicer.start(job)
        return self.slices

    # -- errors --------------------------------------------------------------------------
    def _safe(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as err:  # noqa: BLE001 - reported in the status line
            self._on_error(err)

    def _on_error(self, err: BaseException) -> None:
        self.controls.set_running(False)
        self.view.pause.disabled = True
        message = str(err)[:200]
        self.controls.say(f"error: {html.escape(type(err).__name__)}: {html.escape(message)}")

    def _on_slice_error(self, err: BaseException) -> None:
        self.view.slice_status.value = html.escape(f"slices failed: {err}"[:200])

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
