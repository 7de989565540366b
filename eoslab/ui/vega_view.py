"""A Vega-Lite chart widget whose data can change without rebuilding the chart.

``alt.JupyterChart`` answers every change of its ``spec`` by re-embedding: compiling
Vega-Lite to Vega, building a new Vega view and drawing it from scratch (timed in
``benchmarks/bench_app.md``).  A slider only changes the *data* of a figure, so
:class:`VegaView` keeps the Vega view it built and streams the named datasets that changed
into it:

.. code-block:: javascript

    view.change(name, view.changeset().remove(() => true).insert(rows)); await view.runAsync();

Vega then re-runs only the dataflow downstream of those datasets (scales, marks).

**Why the figure and its data live on a second model.**  anywidget (0.11) gives a widget's
module, ``_esm``, 2 s from the creation of its model to load.  Past that deadline it
rejects the model's readiness, and from then on *every message the kernel sends to that
model is dropped*: the chart stays drawn but never updates again (the page error
"[anywidget] Failed to initialize model." is the only trace).  The deadline is wall time
on the page's main thread, so it is missed whenever the page is busy while its widgets are
created, e.g. when several chapter pages open at once (``tests/browser/test_load.py``).  So
nothing that changes travels to the anywidget model.  ``spec``, ``datasets`` and
``embed_options`` are mirrored onto :class:`LiveFigure`, a plain ``@jupyter-widgets/base``
model with no deadline, and the module finds it through the widget manager and listens to
it.  The anywidget model carries only what never changes: the module and Vega.

**Loading Vega.**  ``_esm`` is only the short script :data:`MODULE`.  Vega, Vega-Lite and
Vega-Embed travel in the ``_vega`` trait, bundled offline by ``vl_convert.javascript_bundle``
(the bundle ``alt.JupyterChart.enable_offline`` uses, so nothing is fetched from a CDN), and
the module imports them inside ``render``, once per page for all the charts of the page
(keyed by ``_vega_key``): a page with three charts parses the bundle once, not three times.

Each figure is embedded into a fresh element that replaces the previous one only when it is
still the newest, so two figures sent in quick succession cannot leave the older view on
screen while the newer one draws off it.

**Fitting the page.**  A figure whose top level is a row of panels (``hconcat``, or
``vconcat`` rows that are ``hconcat``) is drawn as a ``concat`` with ``columns`` and a flow
layout (``align: "none"``: each row packs its own panels): first all panels in a row; when
the drawn figure is wider than its container, with as many panels a row as fit (from the
measured width of a panel), then one more a row while the widest row has room for another
panel and that many did not overflow before; recomputed whenever the container's width
changes (a ``ResizeObserver``), so panels wrap rather than overflow.  Legends get
``labelLimit: 0`` and ``titleLimit: 0`` (no "…"), axes a ``labelSeparation`` (labels that
would touch are thinned out), and a figure still wider than its
container (one panel on a very narrow page) is scaled down to its width.  Relayouts are
counted in the element's ``data-layouts``, figures in ``data-embeds``, data in
``data-updates``.

**No empty draws.**  Vega's scales on empty data warn ("Infinite extent") and put
placeholder extents into the drawing, so nothing is drawn from an empty dataset.  A figure
whose named datasets all hold no rows is not drawn (the element keeps its height,
``data-waiting`` is set) until rows arrive.  In a figure with data, a layer whose named
dataset is empty is left out, and a panel left with no such layer is drawn as a note of
the panel's size and title: "no data yet" while a run streams, else "no data in this
run (see the status line)" (a part of the run that diverged or was never reached).
When a dataset fills or empties so that what is left out changes, the figure is drawn
again.

Why not ``alt.JupyterChart``: its in-place data path (``_py_to_js_updates``) is private to
Altair and its public ``spec`` path re-embeds.
"""

from __future__ import annotations

import contextlib
import functools

import anywidget
import ipywidgets
import traitlets

from eoslab.ui.vega_module import MODULE

__all__ = ["MODULE", "LiveFigure", "VegaView", "vega_bundle", "vega_key"]



def _vega_lite_version() -> str:
    from altair.utils._importers import vl_version_for_vl_convert

    return vl_version_for_vl_convert()


@functools.cache
def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed as one ES module exporting ``vegaEmbed`` (offline).

    Built once per process (building it is slow) by ``vl_convert.javascript_bundle``, for
    the Vega-Lite version Altair writes.
    """
    import vl_convert as vlc

    return vlc.javascript_bundle("export { vegaEmbed };", vl_version=_vega_lite_version())


@functools.cache
def vega_key() -> str:
    """What identifies :func:`vega_bundle`'s content: the vl-convert and Vega-Lite versions."""
    import vl_convert as vlc

    return f"vl-convert {vlc.__version__}, vega-lite {_vega_lite_version()}"


EMBED_OPTIONS = {"actions": {"export": True, "source": False, "compiled": False, "editor": False}}
MIRRORED = ("spec", "datasets", "embed_options", "streaming")


class LiveFigure(ipywidgets.Widget):
    """What of a :class:`VegaView` can change: ``spec``, ``datasets``, ``embed_options``.

    A plain ``@jupyter-widgets/base`` ``WidgetModel`` (no view), so its messages reach the
    browser however long the page took to load anywidget's module.
    """

    spec = traitlets.Dict(allow_none=True).tag(sync=True)
    datasets = traitlets.Dict().tag(sync=True)
    embed_options = traitlets.Dict(EMBED_OPTIONS).tag(sync=True)
    streaming = traitlets.Bool(False).tag(sync=True)


class VegaView(anywidget.AnyWidget):
    """A Vega-Lite figure (``spec``) whose named datasets (``datasets``) update in place.

    Setting ``spec`` draws a new figure; setting ``datasets`` (name -> list of row dicts)
    replaces those datasets of the current figure and redraws only what depends on them.
    Names the figure does not use are ignored by the browser; setting ``embed_options``
    (Vega-Embed's) draws the figure again.  All three reach the browser through
    :attr:`live` (a :class:`LiveFigure`), see the module docstring; :meth:`hold_sync` holds
    both models.

    >>> w = VegaView(spec={"mark": "point", "data": {"name": "d"}, "datasets": {"d": []}})
    >>> w.datasets = {"d": [{"x": 1}]}
    >>> w.spec["datasets"], w.live.datasets
    ({'d': []}, {'d': [{'x': 1}]})
    """

    _esm = MODULE
    spec = traitlets.Dict(allow_none=True)
    datasets = traitlets.Dict()
    embed_options = traitlets.Dict(EMBED_OPTIONS)
    streaming = traitlets.Bool(False)
    _live = traitlets.Instance(LiveFigure).tag(sync=True, **ipywidgets.widget_serialization)
    _vega = traitlets.Unicode().tag(sync=True)
    _vega_key = traitlets.Unicode().tag(sync=True)

    def __init__(self, **kwargs):
        live = LiveFigure(**{name: kwargs[name] for name in MIRRORED if name in kwargs})
        super().__init__(_live=live, _vega=vega_bundle(), _vega_key=vega_key(), **kwargs)

    @property
    def live(self) -> LiveFigure:
        """The model that carries ``spec``, ``datasets`` and ``embed_options`` to the browser."""
        return self._live

    @traitlets.observe(*MIRRORED)
    def _mirror(self, change) -> None:
        setattr(self._live, change["name"], change["new"])

    @contextlib.contextmanager
    def hold_sync(self):
        """Send the changes made in the block in one message per model."""
        with super().hold_sync(), self._live.hold_sync():
            yield

    def close(self) -> None:
        self._live.close()
        super().close()
