"""The UI layer: the app lifecycle, live charts and chart builders (ipywidgets, offline Altair).

Each chapter notebook is narrative plus a few lines such as::

    from eoslab.chapters.ch01_quadratic_stability.app import QuadraticApp
    app = QuadraticApp()      # preset from eoslab.chapters.presets.preset_for("01")
    app

Patterns:

* :class:`QuadraticApp` (chapter 01): exact, synchronous; every slider move recomputes and
  swaps the chart's datasets in place (no Altair work per move).
* :class:`EdgeOfStabilityApp` (chapter 02): training in background threads with Stop,
  a second Run cancels the first, throttled live updates, stored runs shown at once;
  ``run(wait=True)`` / ``run_sync()`` block for tests and ``EOSLAB_QUICK``.

Charts are :class:`~eoslab.ui.vega_view.VegaView` widgets (Vega bundled by vl-convert, no CDN;
data streamed into the drawn view);
without anywidget they fall back to SVG rendered in the kernel.

Each chapter's app lives in its package (``eoslab/chapters/chNN_slug/app.py``).

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
``eoslab-export``         the export row under the chart: links ``eoslab-export-svg``,
                          ``-png``, ``-csv``, ``-json``; ``eoslab-export-copy`` copies the code
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

__all__ = [
    "BackgroundRunner",
    "LiveChart",
    "RunControls",
    "Throttle",
    "describe_divergence",
    "enable_offline_charts",
    "preset_dropdown",
    "slider",
]


def __getattr__(name: str):
    """The widget pieces of :mod:`eoslab.ui.base`, imported on first use.

    Importing :mod:`eoslab.ui.plots` (pure chart builders, used by widget-free experiments)
    therefore does not import ipywidgets.
    """
    if name in __all__:
        from eoslab.ui import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
