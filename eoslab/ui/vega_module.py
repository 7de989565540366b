"""The browser half of :class:`~eoslab.ui.vega_view.VegaView`: the ES module anywidget loads.

:data:`MODULE` is ``VegaView._esm``.  Its ``render`` finds the figure's
:class:`~eoslab.ui.vega_view.LiveFigure` model, loads Vega from the ``_vega`` trait once
per page, fits the panels to the container (flow rows, as many panels a row as fit), leaves
out what has no data (empty layers; a panel left empty is drawn as a note) and streams
changed datasets into the Vega view it keeps.  The reasons for each are in
:mod:`eoslab.ui.vega_view`; its functions ``prune``, ``hold`` and ``note`` are tested in
Chromium by ``tests/browser/test_vega_pruning.py``.
"""

__all__ = ["MODULE"]

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
