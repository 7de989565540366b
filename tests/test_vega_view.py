"""The in-place Vega view widget: offline bundle, figure vs data updates."""

import re

from eoslab import plots
from eoslab.apps.base import LiveChart
from eoslab.apps.vega_view import VegaView, view_script


def test_the_bundle_imports_nothing_from_the_network():
    script = view_script()
    assert 'model.on("change:datasets",push)' in script  # our snippet, minified, is in it
    assert "export{__default as default}" in script
    assert not re.search(r"""\bimport\s*(\(|[^;]*from\s*)["']https?://""", script)
    assert not re.search(r"""\bimport\s*\(?\s*["']https?://""", script)


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
