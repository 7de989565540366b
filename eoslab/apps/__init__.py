"""Interactive chapter apps built from ipywidgets and offline Altair charts.

Each chapter notebook is narrative plus a few lines such as::

    import eoslab
    app = eoslab.apps.QuadraticApp()      # preset from eoslab.presets.preset_for("01")
    app

Patterns:

* :class:`QuadraticApp` (chapter 01): exact, synchronous; every slider move recomputes and
  swaps the chart's datasets in place (no Altair work per move).
* :class:`EdgeOfStabilityApp` (chapter 02): training in background threads with Stop,
  a second Run cancels the first, throttled live updates, stored runs shown at once;
  ``run(wait=True)`` / ``run_sync()`` block for tests and ``EOSLAB_QUICK``.

Charts are :class:`~eoslab.apps.vega_view.VegaView` widgets (Vega bundled by vl-convert, no CDN;
data streamed into the drawn view);
without anywidget they fall back to SVG rendered in the kernel.

Other chapters' apps live in their own modules here (``eoslab/apps/<slug>.py``, each with an
``__all__``); ``eoslab.apps.<Name>`` finds them on first use, so a new chapter adds its
module without editing this file.

Stable CSS classes for browser tests (``widget.add_class``):

========================  ==============================================================
``eoslab-app``            the app's outer box
``eoslab-preset``         the quick / default / paper dropdown
``eoslab-lr-slider``      the step-size slider
``eoslab-momentum-slider`` the momentum (beta) slider
``eoslab-angle-slider``   rotation of the quadratic (chapter 01)
``eoslab-lambda1-slider`` / ``eoslab-lambda2-slider``  its curvatures (chapter 01)
``eoslab-run``            Run button (reads "Restart" while running)
``eoslab-stop``           Stop button (disabled when idle)
``eoslab-progress``       progress bar
``eoslab-status``         status line (convergence / divergence in words)
``eoslab-chart``          the live chart widget
``eoslab-wd-slider``      weight decay (chapters 11, 12, 13)
``eoslab-batch-slider``   batch size (chapters 09, 11)
``eoslab-noise-slider``   added noise (chapter 06 GD noise, chapter 19)
``eoslab-sigma-slider``   label-noise level (chapter 10)
``eoslab-time-slider``    training time (chapter 07)
``eoslab-sqrt-lr-slider`` the step size of GD on sqrt(L) (chapter 05)
``eoslab-rho-slider``     SAM's radius (chapter 16)
``eoslab-k-slider``       Lookahead's k / the curve's bends (chapters 14, 19)
``eoslab-alpha-slider``   Lookahead's alpha (chapter 19)
``eoslab-period-slider``, ``eoslab-low-slider``, ``eoslab-gamma-slider``,
``eoslab-schedule-menu``  the schedule designer (chapter 17)
``eoslab-metric-menu``    the grid's metric (chapter 18)
``eoslab-kind``           straight line / Bezier / polychain (chapter 14)
========================  ==============================================================
"""

from .base import (
    BackgroundRunner,
    LiveChart,
    RunControls,
    Throttle,
    describe_divergence,
    enable_offline_charts,
    preset_dropdown,
    slider,
)
from .eos import EdgeOfStabilityApp, edge_band, eos_configs
from .quadratic import QuadraticApp, quadratic_verdict

__all__ = [
    "BackgroundRunner",
    "EdgeOfStabilityApp",
    "LiveChart",
    "QuadraticApp",
    "RunControls",
    "Throttle",
    "app_modules",
    "describe_divergence",
    "edge_band",
    "enable_offline_charts",
    "eos_configs",
    "preset_dropdown",
    "quadratic_verdict",
    "slider",
]


def app_modules() -> list[str]:
    """The names of this package's modules (one per chapter pattern, plus ``base``)."""
    import pkgutil

    return sorted(info.name for info in pkgutil.iter_modules(__path__))


def __getattr__(name: str):
    """``eoslab.apps.<Name>`` for a name in the ``__all__`` of one of the app modules."""
    import importlib

    if name.startswith("__"):
        raise AttributeError(name)
    for module_name in app_modules():
        module = importlib.import_module(f"{__name__}.{module_name}")
        if name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}; no module in "
                         f"{__name__} ({', '.join(app_modules())}) exports it")
