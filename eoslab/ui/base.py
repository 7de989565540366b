"""Reusable app pieces: a live chart, throttling, a background runner, controls, status text.

Nothing here blocks the kernel: training runs in a daemon thread that receives a
:class:`threading.Event` to stop on, and every widget update it makes is a traitlet set,
which ipywidgets 8 sends to the front end from any thread.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as widgets

from eoslab.chapters.presets import PRESET_NAMES, get_preset
from eoslab.ui.spec_data import named_data
from eoslab.ui.status import format_value, state_class

__all__ = [
    "BackgroundRunner",
    "LiveChart",
    "RunControls",
    "Throttle",
    "describe_divergence",
    "divergence_text",
    "enable_offline_charts",
    "preset_dropdown",
    "slider",
    "wait_for_visitor",
]

_OFFLINE: bool | None = None


def enable_offline_charts() -> bool:
    """Whether live charts can be drawn in the browser without a CDN.

    They need ``anywidget`` and ``vl-convert-python`` (which bundles Vega for the widget,
    see :mod:`eoslab.ui.vega_view`); when either is missing, :class:`LiveChart` falls
    back to server-side SVG.
    """
    global _OFFLINE
    if _OFFLINE is None:
        try:
            import anywidget  # noqa: F401
            import vl_convert  # noqa: F401

            _OFFLINE = True
        except ImportError:
            _OFFLINE = False
    return _OFFLINE


class LiveChart:
    """One chart widget that is built once and then updated in place.

    ``show(chart)`` draws a new figure (a new layout); ``update(datasets)`` replaces only
    the named datasets of the current one, which costs no Altair work in the kernel and,
    in the browser, no new Vega view: the widget is a :class:`~eoslab.ui.vega_view.VegaView`
    that streams the changed datasets into the view it keeps.  With ``mode="svg"`` (or
    when anywidget is missing) it is an HTML widget holding an SVG rendered in the kernel
    by vl-convert.

    Attributes:
        widget: the ipywidget to place in a layout (CSS class ``eoslab-chart``).
        spec: the current Vega-Lite spec, datasets included.
        updates: how many figures or dataset updates were sent.
    """

    def __init__(self, chart, mode: str = "auto"):
        if mode not in ("auto", "jupyter", "svg"):
            raise ValueError(f"mode={mode!r} is not allowed; allowed: auto, jupyter, svg")
        if mode == "auto":
            mode = "jupyter" if enable_offline_charts() else "svg"
        elif mode == "jupyter" and not enable_offline_charts():
            raise ImportError("mode='jupyter' needs anywidget and vl-convert-python")
        self.mode, self.updates = mode, 0
        self._lock = threading.Lock()
        if mode == "jupyter":
            from eoslab.ui.vega_view import VegaView

            self.widget = VegaView()
        else:
            self.widget = widgets.HTML()
        self.widget.add_class("eoslab-chart")
        self.show(chart)

    def show(self, chart) -> None:
        """Draw a new figure (its layout may differ from the current one).

        Every named data source of the figure is listed in its ``datasets`` (empty when the
        chart gives it no rows), so the browser knows when the figure has nothing to draw.
        """
        spec = chart.to_dict()
        spec["datasets"] = {**dict.fromkeys(named_data(spec), []), **spec.get("datasets", {})}
        with self._lock:
            self._base = {k: v for k, v in spec.items() if k != "datasets"}
            self.spec = spec
            self.updates += 1
            if self.mode == "jupyter":
                with self.widget.hold_sync():
                    self.widget.datasets = {}
                    self.widget.spec = spec
            else:
                self._render_svg()

    def update(self, datasets: Mapping[str, list]) -> None:
        """Replace the named datasets of the current figure."""
        fresh = {k: list(v) for k, v in datasets.items()}
        with self._lock:
            self.spec = {**self._base, "datasets": fresh}
            self.updates += 1
            if self.mode == "jupyter":
                self.widget.datasets = fresh
            else:
                self._render_svg()

    @property
    def streaming(self) -> bool:
        """Whether a run is streaming into the chart.

        The browser then draws a panel whose data has no rows yet as "no data yet" rather
        than as "no data in this run" (see :mod:`eoslab.ui.vega_view`).
        """
        return bool(getattr(self.widget, "streaming", False))

    @streaming.setter
    def streaming(self, value: bool) -> None:
        if self.mode == "jupyter":
            self.widget.streaming = bool(value)

    def _render_svg(self) -> None:
        import vl_convert as vlc

        self.widget.value = vlc.vegalite_to_svg(self.spec)


class Throttle:
    """Call ``fn`` at most once per ``interval`` seconds; the latest skipped call is kept.

    A call within ``interval`` of the last one is remembered (replacing any earlier
    remembered call) and happens on the next call after the interval or on :meth:`flush`.

    >>> seen, now = [], [0.0]
    >>> t = Throttle(seen.append, 0.2, clock=lambda: now[0])
    >>> t(1); now[0] = 0.1; t(2); t(3); t.flush(); seen
    [1, 3]
    """

    def __init__(self, fn: Callable, interval: float = 0.2,
                 clock: Callable[[], float] = time.monotonic):
        if not (isinstance(interval, (int, float)) and math.isfinite(interval) and interval >= 0):
            raise ValueError(f"interval={interval!r} is not allowed; use seconds >= 0")
        self.fn, self.interval, self.clock = fn, float(interval), clock
        self._last = -math.inf
        self._pending: tuple | None = None
        self._lock = threading.Lock()

    def __call__(self, *args) -> None:
        with self._lock:
            now = self.clock()
            if now - self._last < self.interval:
                self._pending = args
                return
            self._last, self._pending = now, None
        self.fn(*args)

    def flush(self) -> None:
        """Make the remembered call now, if there is one."""
        with self._lock:
            args, self._pending = self._pending, None
            if args is not None:
                self._last = self.clock()
        if args is not None:
            self.fn(*args)


_VISITOR = threading.Event()
_VISITOR_LOCK = threading.Lock()


def in_preheated_kernel() -> bool:
    """Whether this kernel is a Voila pre-heated one no visitor has been handed yet."""
    return os.environ.get("VOILA_PREHEAT") == "True" and not _VISITOR.is_set()


def wait_for_visitor() -> None:
    """Block until a visitor's page takes this kernel (returns at once outside a pool).

    ``eoslab serve`` keeps pre-heated kernels that have executed a chapter before anyone
    asks for it; an app there is built, but training it for nobody would load the CPU
    with one run per pooled chapter.  :class:`BackgroundRunner` calls this in its thread
    before a job, so the run starts when Voila hands the kernel to a page (it sends the
    request's details to the kernel, which ``voila.utils.wait_for_request`` receives).
    """
    if not in_preheated_kernel():
        return
    with _VISITOR_LOCK:  # one thread talks to Voila, the others wait for it
        if _VISITOR.is_set():
            return
        try:
            from voila.utils import wait_for_request

            wait_for_request()
        except Exception as err:  # noqa: BLE001 - no Voila to ask: run now rather than never
            logging.getLogger(__name__).warning("not waiting for a visitor: %s", err)
        _VISITOR.set()


class BackgroundRunner:
    """Runs one job at a time in a daemon thread; starting a new job cancels the old one.

    A job is ``job(stop: threading.Event, token: int)``; it should return soon after
    ``stop`` is set, and may use :meth:`current` to ignore its own late updates once a
    newer job started.  Exceptions are kept in :attr:`error` and passed to ``on_error``.
    In a Voila pre-heated kernel a background job first waits for a visitor
    (:func:`wait_for_visitor`).
    """

    def __init__(self, on_error: Callable[[BaseException], None] | None = None):
        self.on_error = on_error
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._token = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def current(self, token: int) -> bool:
        """Whether ``token`` belongs to the newest job (older jobs should stay silent)."""
        return token == self._token

    def _call(self, job, stop, token, deferred: bool = False) -> None:
        try:
            if deferred:
                wait_for_visitor()
                if stop.is_set():
                    return
            job(stop, token)
        except BaseException as err:  # reported, never silently lost
            if token == self._token:
                self.error = err
                if self.on_error is not None:
                    self.on_error(err)

    def start(self, job: Callable[[threading.Event, int], Any]) -> int:
        """Cancel the running job (without waiting for it) and start ``job`` in a thread."""
        self.stop()
        self._token += 1
        self._stop, self.error = threading.Event(), None
        self._thread = threading.Thread(target=self._call,
                                        args=(job, self._stop, self._token, True),
                                        daemon=True, name=f"eoslab-job-{self._token}")
        self._thread.start()
        return self._token

    def run_sync(self, job: Callable[[threading.Event, int], Any]) -> None:
        """Run ``job`` in the calling thread (tests, quick mode); cancels any running job."""
        self.stop()
        self._token += 1
        self._stop, self.error = threading.Event(), None
        self._call(job, self._stop, self._token)
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Ask the running job to stop; returns at once."""
        self._stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current job ends; ``False`` if it is still running at ``timeout``."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running


def _classed(widget, css: str):
    widget.add_class(css)
    return widget


def preset_dropdown(chapter: str, value: str) -> widgets.Dropdown:
    """Quick / default / paper, labelled with their expected times (class ``eoslab-preset``).

    As wide as its longest label (about 7.5 px a character, plus the description and the
    arrow), never wider than its row: a label is never cut.
    """
    options = [(get_preset(chapter, name).label, name) for name in PRESET_NAMES]
    width = 110 + 8 * max(len(label) for label, _ in options)
    return _classed(widgets.Dropdown(options=options, value=value, description="preset",
                                     layout=widgets.Layout(width=f"{max(width, 320)}px",
                                                           max_width="98%")),
                    "eoslab-preset")


def slider(name: str, value: float, low: float, high: float, step: float, css: str,
           continuous: bool = True, readout_format: str = ".3g") -> widgets.FloatSlider:
    """A float slider with a stable CSS class (e.g. ``eoslab-lr-slider``)."""
    return _classed(widgets.FloatSlider(value=value, min=low, max=high, step=step,
                                        description=name, continuous_update=continuous,
                                        readout_format=readout_format,
                                        layout=widgets.Layout(width="480px",
                                                              max_width="100%"),
                                        style={"description_width": "160px"}), css)


class RunControls:
    """Run / Stop buttons, a progress bar and a status line.

    CSS classes: ``eoslab-run``, ``eoslab-stop``, ``eoslab-progress``, ``eoslab-status``.
    """

    def __init__(self):
        self.run = _classed(widgets.Button(description="Run", button_style="primary",
                                           icon="play"), "eoslab-run")
        self.stop = _classed(widgets.Button(description="Stop", icon="stop", disabled=True),
                             "eoslab-stop")
        self.progress = _classed(widgets.IntProgress(value=0, min=0, max=1,
                                                     layout=widgets.Layout(width="300px")),
                                 "eoslab-progress")
        self.status = _classed(widgets.HTML(value=""), "eoslab-status")
        self.state = "idle"
        self.status.add_class(state_class(self.state))
        self.watchers: list[Callable[[str], None]] = []  # called with each new state
        self.box = widgets.HBox([self.run, self.stop, self.progress],
                                layout=widgets.Layout(flex_flow="row wrap"))

    def set_running(self, running: bool) -> None:
        self.run.description = "Restart" if running else "Run"
        self.stop.disabled = not running

    def say(self, text: str, state: str | None = None) -> None:
        """Show ``text`` in the status line, in ``state`` (``None`` keeps the state).

        ``state`` is one of :data:`eoslab.ui.status.STATES`; the widget carries it as its
        ``eoslab-state-*`` class.
        """
        if state is not None and state != self.state:
            new = state_class(state)  # checked before anything changes
            self.status.remove_class(state_class(self.state))
            self.status.add_class(new)
            self.state = state
            for watch in self.watchers:
                watch(state)
        self.status.value = text


def describe_divergence(step: int, loss: float, lr: float, sharpness: float | None = None,
                        momentum: float = 0.0) -> str:
    """One sentence saying that and why a run diverged.

    >>> describe_divergence(37, 1.2e4, 0.5)
    'diverged at step 37: loss 1.2e+04 — η = 0.5 is too large for this curvature (2/η = 4)'

    A loss past 1e300 (the float64 overflow a diverging run reaches) reads "> 1e300".
    """
    edge = (2 + 2 * momentum) / lr
    name = "(2+2β)/η" if momentum else "2/η"
    shown = f"{loss:.2g}" if math.isfinite(loss) and abs(loss) <= 1e300 else format_value(loss)
    text = (f"diverged at step {step}: loss {shown} — η = {lr:.3g} is too large for this "
            f"curvature ({name} = {edge:.3g}")
    if sharpness is not None and math.isfinite(sharpness):
        text += f", last sharpness {sharpness:.3g}"
    return text + ")"


def divergence_text(result: dict) -> str:
    """The status sentence of a diverged result (names the stage that blew up).

    ``result["diverged"]`` may also carry ``"sharpness"`` (the last one measured) and
    ``"momentum"`` (heavy-ball β, whose edge is (2+2β)/η); the sentence names them.

    >>> text = divergence_text(
    ...     {"diverged": {"step": 12, "loss": 3e4, "lr": 5.0, "stage": "endpoint 1"}})
    >>> for part in text.split(" — "):
    ...     print(part)
    endpoint 1 diverged at step 12: loss 3e+04
    η = 5 is too large for this curvature (2/η = 0.4)
    """
    info = result["diverged"]
    text = describe_divergence(int(info["step"]), float(info["loss"]), float(info["lr"]),
                               info.get("sharpness"), float(info.get("momentum", 0.0)))
    return f"{info.get('stage', 'the run')} {text}"
