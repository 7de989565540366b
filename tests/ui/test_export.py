"""Exports: SVG/PNG of a chart, CSV/JSON of datasets, the code that reproduces a run, the row.

CSV choice checked here: ``None`` is an empty cell, NaN is ``nan`` and infinities ``inf`` /
``-inf``, so ``float(cell)`` gives back every float exactly (NaN as NaN).  JSON has no NaN:
a non-finite float becomes ``null``.
"""

import base64
import csv
import io
import json
import math
import re
import struct
import xml.etree.ElementTree as ET

import pytest

from eoslab.core.config import TrainConfig
from eoslab.core.export_formats import datasets_csv, datasets_rows, safe_stem
from eoslab.ui.export import (
    PNG_SIGNATURE,
    ExportControls,
    chapter_code,
    chart_png,
    chart_svg,
    config_code,
    datasets_json,
    render_apart,
    rows_csv,
)
from eoslab.ui.plots import WIDTH, history_chart

HISTORY = {"eta = 0.1": [{"step": 0, "loss": 1.0}, {"step": 10, "loss": 0.25}],
           "eta = 0.2": [{"step": 0, "loss": 1.0}, {"step": 10, "loss": 0.125}]}


def svg_text(svg: str) -> str:
    root = ET.fromstring(svg)
    return " ".join(t for el in root.iter() for t in [el.text] if t)


def png_size(png: bytes) -> tuple[int, int]:
    assert png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def test_svg_is_xml_with_the_charts_titles():
    chart = history_chart(HISTORY, title="loss of two step sizes")
    svg = chart_svg(chart)
    text = svg_text(svg)
    assert ET.fromstring(svg).tag.endswith("svg")
    for title in ("loss of two step sizes", "step", "loss", "eta = 0.1", "eta = 0.2"):
        assert title in text
    assert chart_svg(chart.to_dict()) == svg  # a spec dict renders the same


def test_png_has_the_signature_and_scales():
    chart = history_chart(HISTORY)
    one, two = chart_png(chart, scale=1), chart_png(chart, scale=2)
    assert one.startswith(PNG_SIGNATURE) and two.startswith(PNG_SIGNATURE)
    (w1, h1), (w2, h2) = png_size(one), png_size(two)
    # the plot is WIDTH px wide plus axes and legend: between WIDTH and 2 WIDTH at scale 1
    assert WIDTH < w1 < 2 * WIDTH and 100 < h1 < 600
    assert abs(w2 - 2 * w1) <= 2 and abs(h2 - 2 * h1) <= 2
    assert 2_000 < len(two) < 2_000_000
    with pytest.raises(ValueError, match="scale=0"):
        chart_png(chart, scale=0)


def test_pictures_made_apart_are_the_same():
    spec = history_chart(HISTORY, title="apart").to_dict()
    svg, png = render_apart(spec, scale=1)
    assert svg == chart_svg(spec)
    assert png.startswith(PNG_SIGNATURE) and png_size(png) == png_size(chart_png(spec, scale=1))
    with pytest.raises(RuntimeError, match="could not be rendered"):
        render_apart({"mark": "no-such-mark"})


def test_csv_round_trips_rows_with_missing_and_non_finite_values():
    rows = [{"step": 0, "loss": 0.1 + 0.2, "tag": "a,b"},
            {"step": 10, "sharpness": float("inf"), "loss": float("nan")},
            {"step": 20, "sharpness": float("-inf"), "loss": None, "band": [1.5, 2]}]
    back = list(csv.DictReader(io.StringIO(rows_csv(rows))))
    assert list(back[0]) == ["step", "loss", "tag", "sharpness", "band"]  # first-seen order
    assert [int(r["step"]) for r in back] == [0, 10, 20]
    assert float(back[0]["loss"]) == 0.1 + 0.2  # exact, not rounded
    assert back[0]["tag"] == "a,b" and back[0]["sharpness"] == ""
    assert math.isnan(float(back[1]["loss"])) and float(back[1]["sharpness"]) == math.inf
    assert float(back[2]["sharpness"]) == -math.inf and back[2]["loss"] == ""
    assert json.loads(back[2]["band"]) == [1.5, 2]
    assert rows_csv([]) == ""
    with pytest.raises(ValueError, match=r"rows\[1\] is a list"):
        rows_csv([{"a": 1}, [1, 2]])


def test_several_datasets_make_one_csv_with_a_dataset_column():
    datasets = {"history": [{"step": 0, "loss": 1.0}], "edge": [{"y": 4.0, "dataset": "x"}]}
    back = list(csv.DictReader(io.StringIO(datasets_csv(datasets))))
    assert [r["dataset"] for r in back] == ["history", "edge"]
    assert back[1]["dataset_"] == "x" and float(back[1]["y"]) == 4.0 and back[1]["loss"] == ""
    assert len(datasets_rows(datasets)) == 2


def test_json_round_trips_and_has_no_nan_tokens():
    datasets = {"history": [{"step": 0, "loss": 0.1 + 0.2, "run": "a", "ok": True}],
                "edge": [{"y": float("nan"), "z": float("inf"), "pair": (1, 2)}]}
    text = datasets_json(datasets)
    assert "NaN" not in text and "Infinity" not in text
    back = json.loads(text)
    assert back["history"] == datasets["history"]
    assert back["edge"] == [{"y": None, "z": None, "pair": [1, 2]}]


@pytest.mark.parametrize("config", [
    TrainConfig(),
    TrainConfig(lr=0.05, steps=40, optimizer="adam", betas=(0.8, 0.95), sharpness_every=5),
    TrainConfig(dataset="moons", n_train=64, model="fc-relu", width=32, depth=1,
                schedule="cosine", schedule_options={"eta_min": 0.001}, dtype="float64"),
])
def test_config_code_builds_the_same_config(config):
    code = config_code(config)
    scope = {"__name__": "exported"}
    exec(compile(code, "<export>", "exec"), scope)  # the run itself is under __main__
    assert scope["config"] == config and scope["config"].key() == config.key()
    changed = [f for f in ("lr", "steps", "optimizer", "model") if getattr(config, f) !=
               getattr(TrainConfig(), f)]
    assert all(f"{f}=" in code for f in changed)
    assert "data_seed=" not in code  # defaults are left out


def test_config_code_trains_the_config(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EOSLAB_STORE", str(tmp_path))
    config = TrainConfig(steps=5, record_every=1, n_train=64)
    scope = {"__name__": "__main__"}
    exec(compile(config_code(config), "<export>", "exec"), scope)
    assert scope["result"].history[-1]["step"] == 5
    assert capsys.readouterr().out.strip()


def test_chapter_code_reproduces_the_apps_result():
    from eoslab.chapters.ch01_quadratic_stability.app import QuadraticApp

    app = QuadraticApp("quick", chart_mode="jupyter")
    app.set(lr=0.55, angle=10.0)
    assert app.exports.wait(60)
    code = app.exports.files["py"][1].decode()
    assert code == chapter_code("01", "quick", app.settings())
    scope = {"__name__": "__main__"}
    exec(compile(code, "<export>", "exec"), scope)
    assert scope["result"]["datasets"] == app.result["datasets"]
    back = list(csv.DictReader(io.StringIO(app.exports.files["csv"][1].decode())))
    assert len(back) == sum(len(v) for v in app.result["datasets"].values())
    assert ET.fromstring(app.exports.files["svg"][1].decode()).tag.endswith("svg")
    assert app.exports.name == "ch01-quick-lr0.55-momentum0.0-angle10.0-lambda12.0-lambda20.5"


def test_chapter_code_refuses_bad_input():
    with pytest.raises(ValueError, match="preset 'huge'"):
        chapter_code("01", "huge", {})
    with pytest.raises(ValueError, match="chapter '77'"):
        chapter_code("77", "quick", {})


def links(row: ExportControls) -> dict:
    found = re.findall(r'<a download="([^"]+)" class="eoslab-export-(\w+)" '
                       r'href="data:([^;]+);base64,([^"]+)"', row.links.value)
    return {kind: (name, mime, base64.b64decode(data)) for name, kind, mime, data in found}


def test_export_row_offers_links_made_off_the_callers_thread():
    row = ExportControls("ch02 quick/lr=0.3", delay=0.05)
    assert "eoslab-export" in row.widget._dom_classes and row.name == "ch02-quick-lr-0.3"
    chart = history_chart(HISTORY)
    datasets = chart.to_dict()["datasets"]
    row.update(chart=chart, datasets=datasets, code="print('hi')")
    assert row.wait(60) and row.error is None
    got = links(row)
    assert sorted(got) == ["csv", "json", "png", "svg"]
    assert got["svg"][0] == "ch02-quick-lr-0.3.svg" and got["svg"][1] == "image/svg+xml"
    assert got["png"][2].startswith(PNG_SIGNATURE)
    assert json.loads(got["json"][2]) == datasets
    assert len(list(csv.DictReader(io.StringIO(got["csv"][2].decode())))) == 4
    assert "eoslab-export-copy" in row.code.value and "print(&#x27;hi&#x27;)" in row.code.value

    row.update(datasets={"a": [{"x": 1}]}, name="data only")  # no chart: data links only
    assert row.wait(60)
    assert sorted(links(row)) == ["csv", "json"] and row.code.value == ""
    assert links(row)["csv"][0] == "data-only.csv"
    row.clear()
    assert row.links.value == "" and row.files == {}


def test_quick_updates_make_the_files_once_for_the_last():
    row = ExportControls("x", delay=0.5)
    row.update(datasets={"a": [{"x": 1}]})
    assert not row.wait(0) and row.files == {}  # nothing made on the caller's thread
    row.update(datasets={"a": [{"x": 2}], "b": [{"x": 3}]})
    assert row.wait(60)
    assert json.loads(row.files["json"][1]) == {"a": [{"x": 2}], "b": [{"x": 3}]}
    with pytest.raises(ValueError, match="delay=-1"):
        ExportControls("x", delay=-1)


def test_safe_stem():
    assert safe_stem("../a b") == "a-b" and safe_stem("///") == "export"
