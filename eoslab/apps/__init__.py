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

Charts are ``alt.JupyterChart`` widgets in offline mode (Vega bundled by vl-convert, no CDN);
without anywidget they fall back to SVG rendered in the kernel.

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
========================  ==============================================================
"""

from .base import (BackgroundRunner, LiveChart, RunControls, Throttle, describe_divergence,
                   enable_offline_charts, preset_dropdown, slider)
from .eos import EdgeOfStabilityApp, edge_band, eos_configs
from .quadratic import QuadraticApp, quadratic_verdict
from .lookahead import LookaheadApp  # noqa: F401  chapter 19

__all__ = ["BackgroundRunner", "LiveChart", "RunControls", "Throttle", "describe_divergence",
           "enable_offline_charts", "preset_dropdown", "slider", "EdgeOfStabilityApp",
           "edge_band", "eos_configs", "QuadraticApp", "quadratic_verdict"]
from .mode_connectivity import ModeConnectivityApp  # noqa: F401  chapter 14
from .normalized_gd import NormalizedGDApp  # noqa: F401  chapter 05
