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

// fitting the container and drawing no empty data: see the Python docstring
function rowsOf(spec) {
    if (Array.isArray(spec.hconcat) || Array.isArray(spec.concat)) return [spec];
    if (Array.isArray(spec.vconcat)) {
        return spec.vconcat.filter((r) => Array.isArray(r.hconcat) || Array.isArray(r.concat));
    }
    return [];
}

function panelsOf(spec) {
    return Math.max(0, ...rowsOf(spec).map((r) => (r.hconcat || r.concat).length));
}

function arrange(spec, columns) {
    for (const row of rowsOf(spec)) {
        if (Array.isArray(row.hconcat)) { row.concat = row.hconcat; delete row.hconcat; }
        row.columns = columns;
        row.align ??= "none";   // a flow layout: each row packs its own panels
    }
    const config = (spec.config ??= {});
    config.legend = { labelLimit: 0, titleLimit: 0, ...(config.legend || {}) };
    // tick labels closer than this are thinned out (log axes: "1e-81e-7", "450500")
    config.axis = { labelSeparation: 4, ...(config.axis || {}) };
    return spec;
}

function available(el) {
    const width = el.clientWidth || (el.parentElement && el.parentElement.clientWidth);
    return width || Math.max(320, document.documentElement.clientWidth - 40);
}

function drawnWidth(target) {
    const box = target.querySelector(".vega-embed") || target;
    return Math.max(box.scrollWidth, box.getBoundingClientRect().width);
}

const full = (rows) => Array.isArray(rows) && rows.length > 0;
function hold(spec, datasets) {
    const named = Object.keys(spec.datasets || {});
    return named.length > 0 && !named.some((n) => full(datasets[n]));
}

function note(node, text) {
    const size = (k, d) => [node[k], ...(node.layer || []).map((l) => l[k])]
        .find(Number.isFinite) ?? d;
    const w = size("width", 300), h = size("height", 200);
    const out = { width: w, height: h, data: { values: [{}] },
        mark: { type: "text", color: "#666", fontSize: 12, align: "center", baseline: "middle" },
        encoding: { x: { value: w / 2 }, y: { value: h / 2 }, text: { value: text } } };
    const title = [node, ...(node.layer || [])].map((l) => l.title).find((t) => t !== undefined);
    if (title !== undefined) out.title = title;
    return out;
}

// Leaves out layers whose named data is empty, draws a panel left with none as a note;
// returns the paths it changed ("" when none), so a change of them redraws the figure.
function prune(spec, datasets, text) {
    const gone = [];
    function visit(node, data, path) {
        const own = node.data;
        if (own && typeof own === "object") data = "values" in own ? null : own.name ?? data;
        if (Array.isArray(node.layer)) {
            const kinds = node.layer.map((c, i) => visit(c, data, path + "l" + i));
            if (!kinds.includes("full")) return kinds.includes("empty") ? "empty" : "none";
            node.layer = node.layer.filter((c, i) => kinds[i] !== "empty");
            kinds.forEach((k, i) => { if (k === "empty") gone.push(path + "l" + i); });
            return "full";
        }
        for (const key of ["hconcat", "vconcat", "concat"]) {
            if (!Array.isArray(node[key])) continue;
            const kinds = node[key].map((c, i) => visit(c, data, path + key[0] + i));
            if (!kinds.includes("full")) return kinds.includes("empty") ? "empty" : "none";
            node[key] = node[key].map((c, i) => kinds[i] === "empty" ? note(c, text) : c);
            kinds.forEach((k, i) => { if (k === "empty") gone.push(path + key[0] + i); });
            return "full";
        }
        if (node.mark === undefined || !data) return "none";
        return full(datasets[data]) ? "full" : "empty";
    }
    visit(spec, null, "");
    return gone.length ? gone.sort().join() + ":" + text : "";
}

const emptyText = (streaming) =>
    streaming ? "no data yet" : "no data in this run (see the status line)";

async function render({ model, el }) {
    // spec and datasets arrive on a plain ipywidgets model (see the Python docstring)
    const liveId = model.get("_live").replace(/^IPY_MODEL_/, "");
    const live = await model.widget_manager.get_model(liveId);
    const listening = {};    // the context of this view's listeners on `live`
    let view = null, finalize = null, generation = 0;
    let shown = {};          // dataset name -> JSON of the rows the view holds
    let columns = null, perPanel = null, waiting = false, fresh = true, pruned = "";
    let tooWide = Infinity;  // the fewest columns seen wider than the container
    el.style.maxWidth = "100%";
    el.style.minWidth = "0";

    function wait() {
        const height = el.getBoundingClientRect().height;
        if (finalize !== null) finalize();
        view = null; finalize = null; shown = {}; waiting = true;
        const box = document.createElement("div");
        box.className = "eoslab-chart-waiting";
        box.style.minHeight = Math.max(height, 120) + "px";
        el.replaceChildren(box);
        el.dataset.waiting = "1";
    }

    async function push() {
        const datasets = live.get("datasets") || {};
        const spec = live.get("spec") || {};
        const all = { ...spec.datasets, ...datasets };
        const held = hold(spec, all);
        if (view === null) {
            if (waiting && !held) await embed("data");
            return;
        }
        if (held) { wait(); return; }
        const { datasets: _, ...shape } = spec;
        if (prune(structuredClone(shape), all, emptyText(live.get("streaming"))) !== pruned) {
            await embed("data", columns);
            return;
        }
        let changed = false;
        for (const [name, rows] of Object.entries(datasets)) {
            if (!(name in (spec.datasets || {}))) continue;   // a name the figure does not read
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

    async function embed(why = "spec", narrower = null) {
        const mine = ++generation;
        if (why === "spec") { perPanel = null; fresh = true; tooWide = Infinity; }
        const spec = structuredClone(live.get("spec"));
        if (spec === null || Object.keys(spec).length === 0) {
            if (finalize !== null) finalize();
            view = null; finalize = null; shown = {};
            el.replaceChildren();
            return;
        }
        const datasets = { ...(spec.datasets || {}), ...(live.get("datasets") || {}) };
        spec.datasets = datasets;
        if (hold(spec, datasets)) { wait(); return; }
        pruned = prune(spec, datasets, emptyText(live.get("streaming")));
        const panels = panelsOf(spec);
        if (panels > 1) {
            columns = narrower !== null ? narrower : perPanel === null ? panels
                : Math.max(1, Math.min(panels, Math.floor(available(el) / perPanel)));
            arrange(spec, columns);
        } else {
            columns = null;
            arrange(spec, 1);
        }
        const target = document.createElement("div");   // joins el only if still the newest
        target.style.maxWidth = "100%";
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
        if (finalize !== null) finalize();
        el.replaceChildren(target);
        delete el.dataset.waiting;
        waiting = false;
        view = api.view; finalize = api.finalize;
        for (const [name, rows] of Object.entries(spec.datasets || {})) {
            shown[name] = JSON.stringify(rows);
        }
        const svg = target.querySelector("svg");
        if (svg) { svg.style.maxWidth = "100%"; svg.style.height = "auto"; }
        count(el, why === "layout" ? "layouts" : fresh ? "embeds" : "updates");
        fresh = false;
        if (columns !== null) {
            const width = drawnWidth(target);
            perPanel = width / columns;
            if (width > available(el) + 1 && columns > 1) {
                tooWide = Math.min(tooWide, columns);
                const fit = Math.floor(available(el) / perPanel);
                await embed("layout", Math.max(1, Math.min(columns - 1, fit)));
                return;
            }
            // the estimate from a wider layout may be short: try one panel more a row
            const more = columns + 1;
            if (more <= panels && more < tooWide && width + perPanel <= available(el)) {
                await embed("layout", more);
                return;
            }
        }
        await push();
    }

    let pending = null, lastWidth = available(el);
    const observer = new ResizeObserver(() => {
        clearTimeout(pending);
        pending = setTimeout(() => {
            const width = available(el);
            if (Math.abs(width - lastWidth) < 2) return;
            lastWidth = width;
            if (view === null || columns === null || perPanel === null) return;
            const panels = panelsOf(live.get("spec") || {});
            const fit = Math.max(1, Math.min(panels, Math.floor(width / perPanel)));
            tooWide = Infinity;
            if (fit !== columns) embed("layout");
        }, 150);
    });
    observer.observe(el);

    live.on("change:spec", () => embed("spec"), listening);
    live.on("change:embed_options", () => embed("spec"), listening);
    live.on("change:datasets change:streaming", push, listening);
    await embed("spec");
    return () => {
        observer.disconnect();
        clearTimeout(pending);
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
