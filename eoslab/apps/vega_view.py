"""A Vega-Lite chart widget whose data can change without rebuilding the chart.

``alt.JupyterChart`` answers every change of its ``spec`` by re-embedding: compiling
Vega-Lite to Vega, building a new Vega view and drawing it from scratch (about 300 ms in
Chromium for chapter 01's three panels, measured in ``benchmarks/bench_app.md``).  A slider
only changes the *data* of a figure, so :class:`VegaView` keeps the Vega view it built and
streams the named datasets that changed into it:

.. code-block:: javascript

    view.change(name, view.changeset().remove(() => true).insert(rows)); await view.runAsync();

Vega then re-runs only the dataflow downstream of those datasets (scales, marks).  The
JavaScript is bundled with Vega, Vega-Lite and Vega-Embed by ``vl_convert.javascript_bundle``
(the same offline bundle ``alt.JupyterChart.enable_offline`` uses), so nothing is fetched
from a CDN.

Why not ``alt.JupyterChart``: its in-place data path (``_py_to_js_updates``) is private to
Altair and its public ``spec`` path re-embeds; this widget is the ~60 lines of JavaScript
that keep the view.
"""

from __future__ import annotations

import functools

import anywidget
import traitlets

__all__ = ["VegaView", "view_script"]

_SNIPPET = r"""
async function render({ model, el }) {
    let view = null, finalize = null, generation = 0;
    let shown = {};          // dataset name -> JSON of the rows the view holds

    async function push() {
        if (view === null) return;               // embed() pushes once it is done
        const datasets = model.get("datasets") || {};
        let changed = false;
        for (const [name, rows] of Object.entries(datasets)) {
            const key = JSON.stringify(rows);
            if (shown[name] === key) continue;
            shown[name] = key;
            try {
                view.change(name, view.changeset().remove(() => true).insert(structuredClone(rows)));
                changed = true;
            } catch (error) {
                console.warn("eoslab VegaView: dataset", name, error);
            }
        }
        if (changed) {
            view.resize();   // re-run autosize: a legend or axis labels may have grown
            await view.runAsync();
            el.dataset.updates = String(Number(el.dataset.updates || 0) + 1);
        }
    }

    async function embed() {
        const mine = ++generation;
        if (finalize !== null) finalize();
        view = null; finalize = null; shown = {};
        const spec = structuredClone(model.get("spec"));
        if (spec === null || Object.keys(spec).length === 0) { el.replaceChildren(); return; }
        let api;
        try {
            api = await vegaEmbed(el, spec, model.get("embed_options") || {});
        } catch (error) {
            el.innerHTML = '<div style="color:red">Vega-Lite error: ' + error.message + '</div>';
            return;
        }
        if (mine !== generation) { api.finalize(); return; }   // a newer spec arrived meanwhile
        view = api.view; finalize = api.finalize;
        for (const [name, rows] of Object.entries(spec.datasets || {})) shown[name] = JSON.stringify(rows);
        el.dataset.embeds = String(Number(el.dataset.embeds || 0) + 1);
        await push();
    }

    model.on("change:spec", embed);
    model.on("change:embed_options", embed);
    model.on("change:datasets", push);
    await embed();
    return () => { if (finalize !== null) finalize(); };
}
export default { render };
"""


@functools.cache
def view_script() -> str:
    """The widget's ES module: the snippet above bundled with Vega (offline, no imports)."""
    import vl_convert as vlc
    from altair.utils._importers import vl_version_for_vl_convert

    return vlc.javascript_bundle(_SNIPPET, vl_version=vl_version_for_vl_convert())


class VegaView(anywidget.AnyWidget):
    """A Vega-Lite figure (``spec``) whose named datasets (``datasets``) update in place.

    Setting ``spec`` draws a new figure; setting ``datasets`` (name -> list of row dicts)
    replaces those datasets of the current figure and redraws only what depends on them.
    Names the figure does not use are ignored by the browser.

    >>> w = VegaView(spec={"mark": "point", "data": {"name": "d"}, "datasets": {"d": []}})
    >>> w.datasets = {"d": [{"x": 1}]}
    >>> w.spec["datasets"], w.datasets
    ({'d': []}, {'d': [{'x': 1}]})
    """

    spec = traitlets.Dict(allow_none=True).tag(sync=True)
    datasets = traitlets.Dict().tag(sync=True)
    embed_options = traitlets.Dict(
        {"actions": {"export": True, "source": False, "compiled": False, "editor": False}}
    ).tag(sync=True)

    def __init__(self, **kwargs):
        # anywidget reads ``_esm`` from the class; bundling Vega takes ~1 s, so the first
        # instance pays it rather than every ``import eoslab.apps``.
        if "_esm" not in VegaView.__dict__:
            VegaView._esm = view_script()
        super().__init__(**kwargs)
