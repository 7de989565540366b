"""The in-place Vega view widget.

Its offline bundle, figure vs data updates, and which model carries them.
"""

import re

from eoslab.chapters.ch02_edge_of_stability import charts as plots
from eoslab.ui.base import LiveChart
from eoslab.ui.vega_view import MODULE, LiveFigure, VegaView, vega_bundle

NETWORK_IMPORT = (r"""\bimport\s*(\(|[^;]*from\s*)["']https?://""",
                  r"""\bimport\s*\(?\s*["']https?://""")


def test_vega_travels_as_a_trait_and_imports_nothing_from_the_network():
    bundle = vega_bundle()
    assert re.search(r"export\s*\{[^}]*\bas vegaEmbed\s*\}\s*;?\s*$", bundle)
    for pattern in NETWORK_IMPORT:
        assert not re.search(pattern, bundle)
    assert VegaView(spec={})._vega == bundle


def test_the_widget_module_is_small_and_imports_nothing():
    """anywidget gives ``_esm`` 2 s to load: it must not be Vega itself."""
    assert VegaView._esm == MODULE
    # a few KB to load before the deadline (with the fit-to-page layout and the pruning of
    # empty data), against the ~1 MB of Vega
    assert len(MODULE.encode()) < 12_000
    assert len(vega_bundle()) > 500_000  # Vega itself, loaded by render() instead
    assert not re.search(r"^\s*import\s", MODULE, re.MULTILINE)  # only the blob import()
    assert "export default { render }" in MODULE


def test_what_changes_is_synced_on_the_plain_model_only():
    """Messages to an anywidget model are dropped when its module loaded late.

    A plain model's messages are not.
    """
    view = VegaView(spec={"mark": "point"})
    synced = set(view.keys)
    assert {"spec", "datasets", "embed_options"}.isdisjoint(synced)
    assert {"_live", "_vega", "_esm"} <= synced
    assert isinstance(view.live, LiveFigure)
    assert view.live._model_module == "@jupyter-widgets/base"
    assert view.live._model_name == "WidgetModel" and view.live._view_name is None
    assert {"spec", "datasets", "embed_options"} <= set(view.live.keys)
    assert view.get_state()["_live"] == "IPY_MODEL_" + view.live.model_id
    assert view.live.spec == {"mark": "point"}
    assert view.live.embed_options == view.embed_options and view.embed_options["actions"]
    view.embed_options = {"actions": False}
    assert view.live.embed_options == {"actions": False}


def test_hold_sync_sends_one_message_per_model(monkeypatch):
    view = VegaView(spec={})
    sent = []
    monkeypatch.setattr(view, "_send", lambda msg, buffers=None: sent.append(("view", msg)))
    monkeypatch.setattr(view.live, "_send", lambda msg, buffers=None: sent.append(("live", msg)))
    with view.hold_sync():
        view.datasets = {}
        view.spec = {"mark": "line"}
        view.datasets = {"d": [{"x": 1}]}
    assert [who for who, _ in sent] == ["live"]
    assert sent[0][1]["state"] == {"spec": {"mark": "line"}, "datasets": {"d": [{"x": 1}]}}
    view.close()
    assert view.live.comm is None


def test_data_updates_do_not_touch_the_figure():
    chart = LiveChart(plots.eos_chart({0.1: [{"step": 0, "loss": 1.0}]}), mode="jupyter")
    assert isinstance(chart.widget, VegaView)
    sent = []
    chart.widget.observe(lambda change: sent.append(change["name"]), names=["spec", "datasets"])
    for lr in (0.2, 0.3, 0.4):
        chart.update(plots.eos_data({lr: [{"step": 0, "loss": 0.5, "sharpness": 3.0}]}))
    assert sent == ["datasets"] * 3
    assert chart.widget.datasets["thresholds"][0]["threshold"] == 2 / 0.4
    chart.show(plots.eos_chart({0.1: [{"step": 0, "loss": 1.0}]}, momentum=0.9))
    assert sent[3:] == ["datasets", "spec"]  # a new figure: datasets cleared, spec re-sent
    assert chart.widget.datasets == {} and chart.widget.spec == chart.spec
    assert chart.updates == 5
