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

Why not ``alt.JupyterChart``: its in-place data path (``_py_to_js_updates``) is private to
Altair and its public ``spec`` path re-embeds.
"""

from __future__ import annotations

import contextlib
import functools

import anywidget
import ipywidgets
import traitlets

__all__ = ["MODULE", "LiveFigure", "VegaView", "vega_bundle", "vega_key"]

MODULE = r"""
// page-wide: bundle key -> Promise of vegaEmbed, shared by every chart of the page
const LIBRARIES = "__eoslabVegaEmbed";

function loadVegaEmbed(model) {
    const cache = (globalThis[LIBRARIES] ??= new Map());
    const key = model.get("_vega_key");
    if (!cache.has(key)) {
        const blob = new Blob([model.get("_vega")], { type: "text/javascript" });
        const url = URL.createObjectURL(blob);
        cache.set(key, import(url).then(
            (module) => { URL.revokeObjectURL(url); return module.vegaEmbed; },
            (error) => { URL.revokeObjectURL(url); cache.delete(key); throw error; }));
    }
    return cache.get(key);
}

function count(el, name) {
    el.dataset[name] = String(Number(el.dataset[name] || 0) + 1);
}

async function render({ model, el }) {
    // spec and datasets arrive on a plain ipywidgets model (see the Python docstring)
    const liveId = model.get("_live").replace(/^IPY_MODEL_/, "");
    const live = await model.widget_manager.get_model(liveId);
    const listening = {};    // the context of this view's listeners on `live`
    let view = null, finalize = null, generation = 0;
    let shown = {};          // dataset name -> JSON of the rows the view holds

    async function push() {
        if (view === null) return;               // embed() pushes once it is done
        const datasets = live.get("datasets") || {};
        let changed = false;
        for (const [name, rows] of Object.entries(datasets)) {
            const key = JSON.stringify(rows);
            if (shown[name] === key) continue;
            shown[name] = key;
            try {
                const changes = view.changeset().remove(() => true).insert(structuredClone(rows));
                view.change(name, changes);
                changed = true;
            } catch (error) {
                console.warn("eoslab VegaView: dataset", name, error);
            }
        }
        if (changed) {
            view.resize();   // re-run autosize: a legend or axis labels may have grown
            await view.runAsync();
            count(el, "updates");
        }
    }

    async function embed() {
        const mine = ++generation;
        if (finalize !== null) finalize();
        view = null; finalize = null; shown = {};
        const spec = structuredClone(live.get("spec"));
        if (spec === null || Object.keys(spec).length === 0) { el.replaceChildren(); return; }
        const target = document.createElement("div");   // joins el only if still the newest
        let api;
        try {
            const vegaEmbed = await loadVegaEmbed(model);
            if (mine !== generation) return;
            api = await vegaEmbed(target, spec, live.get("embed_options") || {});
        } catch (error) {
            if (mine !== generation) return;
            target.innerHTML =
                '<div style="color:red">Vega-Lite error: ' + error.message + '</div>';
            el.replaceChildren(target);
            return;
        }
        if (mine !== generation) { api.finalize(); return; }   // a newer spec arrived meanwhile
        el.replaceChildren(target);
        view = api.view; finalize = api.finalize;
        for (const [name, rows] of Object.entries(spec.datasets || {})) {
            shown[name] = JSON.stringify(rows);
        }
        count(el, "embeds");
        await push();
    }

    live.on("change:spec", embed, listening);
    live.on("change:embed_options", embed, listening);
    live.on("change:datasets", push, listening);
    await embed();
    return () => {
        live.off(null, null, listening);
        generation++;
        if (finalize !== null) finalize();
    };
}
export default { render };
"""


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
MIRRORED = ("spec", "datasets", "embed_options")


class LiveFigure(ipywidgets.Widget):
    """What of a :class:`VegaView` can change: ``spec``, ``datasets``, ``embed_options``.

    A plain ``@jupyter-widgets/base`` ``WidgetModel`` (no view), so its messages reach the
    browser however long the page took to load anywidget's module.
    """

    spec = traitlets.Dict(allow_none=True).tag(sync=True)
    datasets = traitlets.Dict().tag(sync=True)
    embed_options = traitlets.Dict(EMBED_OPTIONS).tag(sync=True)


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
