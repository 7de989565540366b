"""The chart module draws nothing from empty data (:mod:`eoslab.ui.vega_view`).

Its functions run in Chromium: a layer whose named dataset is empty is left out, a panel
left with no named data becomes a note with the panel's size and title, and the figure so
pruned draws with Vega without the "Infinite extent" warnings the unpruned one gives.
"""

from __future__ import annotations

import json

import pytest

from eoslab.ui.vega_view import MODULE, vega_bundle

# the module's functions, without its ``render`` export, as an object in the page
FUNCTIONS_JS = MODULE.replace("export default { render };", "return { prune, hold, note };")


def line(name: str, y: str = "y") -> dict:
    return {"data": {"name": name}, "mark": "line",
            "encoding": {"x": {"field": "step", "type": "quantitative"},
                         "y": {"field": y, "type": "quantitative"}}}


RULE = {"data": {"values": [{"edge": 2.0}]}, "mark": "rule",
        "encoding": {"y": {"field": "edge", "type": "quantitative"}}}


def figure(datasets: dict) -> dict:
    """Three panels: a line ``a``, a line ``b`` with a rule, a layer of ``a`` and ``c``."""
    return {"$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "hconcat": [{**line("a"), "title": "loss", "width": 220, "height": 150},
                        {"title": "sharpness", "width": 240, "height": 160,
                         "layer": [line("b", "s"), RULE]},
                        {"layer": [{**line("a"), "title": "both"}, line("c", "z")]}],
            "datasets": datasets}


FULL = [{"step": 0, "y": 1.0, "s": 3.0, "z": 0.5}, {"step": 1, "y": 0.5, "s": 3.5, "z": 0.4}]


@pytest.fixture
def page(browser_page):
    page, _ = browser_page
    page.set_content("<html><body><div id='chart'></div></body></html>")
    return page


def prune(page, spec: dict, text: str = "no data in this run") -> tuple[dict, str]:
    return tuple(page.evaluate(
        """([source, spec, text]) => {
            const f = new Function(source)();
            const signature = f.prune(spec, spec.datasets, text);
            return [spec, signature];
        }""", [FUNCTIONS_JS, spec, text]))


def test_nothing_is_pruned_when_every_dataset_has_rows(page):
    spec = figure({"a": FULL, "b": FULL, "c": FULL})
    pruned, signature = prune(page, json.loads(json.dumps(spec)))
    assert signature == ""
    assert pruned == spec


def test_an_empty_panel_becomes_a_note_and_an_empty_layer_is_left_out(page):
    pruned, signature = prune(page, figure({"a": FULL, "b": [], "c": []}), "nothing here")
    first, second, third = pruned["hconcat"]
    assert first == {**line("a"), "title": "loss", "width": 220, "height": 150}
    # the inline rule alone does not keep the panel: it becomes the note, same size and title
    assert second["title"] == "sharpness" and (second["width"], second["height"]) == (240, 160)
    assert second["mark"]["type"] == "text"
    assert second["encoding"]["text"] == {"value": "nothing here"}
    assert second["encoding"]["x"] == {"value": 120} and second["encoding"]["y"] == {"value": 80}
    assert third["layer"] == [{**line("a"), "title": "both"}]  # c's layer left out
    pruned, _ = prune(page, figure({"a": [], "b": FULL, "c": []}))
    assert pruned["hconcat"][2]["title"] == "both"  # a layer's title names its note
    assert signature == "h1,h2l1:nothing here"


def test_a_figure_with_no_rows_anywhere_is_held_not_pruned(page):
    held = page.evaluate("""([source, spec]) => new Function(source)().hold(spec, spec.datasets)""",
                         [FUNCTIONS_JS, figure({"a": [], "b": [], "c": []})])
    assert held is True
    held = page.evaluate("""([source, spec]) => new Function(source)().hold(spec, spec.datasets)""",
                         [FUNCTIONS_JS, figure({"a": FULL, "b": [], "c": []})])
    assert held is False


def draw_warnings(page, spec: dict) -> list:
    """Vega's console warnings while ``spec`` is embedded in the page."""
    warnings = []
    page.on("console", lambda m: warnings.append(m.text) if m.type == "warning" else None)
    page.evaluate("""async ([bundle, spec]) => {
        const url = URL.createObjectURL(new Blob([bundle], {type: "text/javascript"}));
        const { vegaEmbed } = await import(url);
        await vegaEmbed(document.getElementById("chart"), spec, {actions: false});
    }""", [vega_bundle(), spec])
    page.wait_for_timeout(300)
    return [w for w in warnings if w.startswith("WARN")]


def test_the_pruned_figure_draws_without_warnings(page):
    spec = figure({"a": FULL, "b": [], "c": []})
    assert any("Infinite extent" in w for w in draw_warnings(page, spec))  # the check can fail
    page.set_content("<html><body><div id='chart'></div></body></html>")
    pruned, _ = prune(page, spec)
    assert draw_warnings(page, pruned) == []
    texts = page.eval_on_selector_all("#chart svg text", "all => all.map(e => e.textContent)")
    assert "no data in this run" in texts and "sharpness" in texts
