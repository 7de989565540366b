"""Export in Voila: the CSV and SVG links of chapter 02 download files that match its run.

The app's run is reproduced in the test from its own "copy as code" text, so the files are
checked against the same experiment's datasets: the same rows, and the same losses within
a relative 1e-4 (float32 training in another process; the two runs have the same seeds and
thread count, the margin only covers summation order).
"""

import csv
import io
import json
import math
import xml.etree.ElementTree as ET

import pytest

from eoslab.serve import chapter_url

from .conftest import chart_snapshot, finish_run, open_app, screenshot, wait_chart

pytestmark = pytest.mark.browser


def download(page, css: str) -> tuple[str, bytes]:
    with page.expect_download() as info:
        page.click(css)
    done = info.value
    with open(done.path(), "rb") as handle:
        return done.suggested_filename, handle.read()


def test_export_links_download_the_runs_data_and_chart(voila, browser_page):
    page, log = browser_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    open_app(page, chapter_url(voila.url, "02_edge_of_stability.ipynb"), server=voila)
    wait_chart(page)
    finish_run(page)
    page.wait_for_selector(".eoslab-export .eoslab-export-csv", state="visible")
    drawn = chart_snapshot(page)

    csv_name, csv_bytes = download(page, ".eoslab-export-csv")
    svg_name, svg_bytes = download(page, ".eoslab-export-svg")
    json_name, json_bytes = download(page, ".eoslab-export-json")
    assert csv_name == "ch02-quick-lr0.4-momentum0.0-archfc-tanh-lossmse.csv"  # every setting
    assert svg_name.endswith(".svg")
    rows = list(csv.DictReader(io.StringIO(csv_bytes.decode())))
    datasets = json.loads(json_bytes)

    page.click(".eoslab-export summary")  # "copy as code"
    code = page.inner_text(".eoslab-export-code")
    page.click(".eoslab-export-copy")
    page.wait_for_function(
        "() => document.querySelector('.eoslab-export-copy').innerText === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == code
    assert chart_snapshot(page) == drawn  # exporting leaves the chart alone
    page.locator(".eoslab-export").scroll_into_view_if_needed()
    screenshot(page, "voila-export-02")

    scope = {"__name__": "__main__"}
    exec(compile(code, "<copied>", "exec"), scope)  # the app's run, again, in this process
    expected = scope["result"]["datasets"]
    assert scope["result"]["status"] == "finished"

    assert len(rows) == sum(len(v) for v in expected.values())
    history = [r for r in rows if r["dataset"] == "history"]
    assert len(history) == len(expected["history"]) == len(datasets["history"]) > 10
    for got, want, shown in zip(history, expected["history"], datasets["history"]):
        assert int(got["step"]) == want["step"] == shown["step"]
        assert float(got["loss"]) == shown["loss"]  # the CSV and the JSON agree exactly
        assert math.isclose(float(got["loss"]), want["loss"], rel_tol=1e-4), (got, want)

    root = ET.fromstring(svg_bytes)
    text = " ".join(el.text for el in root.iter() if el.text)
    for title in ("train loss", "sharpness λ; dashed: 2/η", "1 = the edge of stability",
                  "η = 0.4"):
        assert title in text, title
    assert not [e for e in log.console_errors if e.startswith("pageerror")], log.console_errors
