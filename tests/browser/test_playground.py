"""The playground in Voila and Chromium: Adam's preconditioned sharpness and threshold,
overlaid runs, exports that match the run, Stop mid-run, divergence then a good run."""

from __future__ import annotations

import base64
import csv
import io
import urllib.parse

from .conftest import open_app, screenshot, status_text, wait_status

PAGE = "playground.ipynb"
TINY = {"n-train": 64, "width": 16, "depth": 1, "steps": 30, "sharpness-every": 10}


def _url(server) -> str:
    return server.url.rstrip("/") + "/voila/render/" + urllib.parse.quote(PAGE)


def _fill(page, name: str, value) -> None:
    box = page.locator(f".eoslab-pg-{name} input").first
    box.fill(str(value))
    box.press("Enter")
    page.wait_for_timeout(150)


def _choose(page, name: str, label: str) -> None:
    page.locator(f".eoslab-pg-{name} select").first.select_option(label=label)
    page.wait_for_timeout(150)


def _run(page, pattern: str, timeout_s: float = 240) -> str:
    before = status_text(page)
    page.locator(".eoslab-run").first.click()
    page.wait_for_function("b => document.querySelector('.eoslab-status').innerText !== b",
                           arg=before, timeout=60_000)
    return wait_status(page, pattern, timeout_s=timeout_s)


def _chart_text(page) -> str:
    return page.inner_text(".eoslab-playground .eoslab-chart")


def _wait_chart_text(page, *words, timeout_s: float = 60) -> str:
    for _ in range(int(timeout_s * 5)):
        text = _chart_text(page) if page.locator(".eoslab-chart svg").count() else ""
        if all(w in text for w in words):
            return text
        page.wait_for_timeout(200)
    raise AssertionError(f"the chart never showed {words}; it shows {text[:400]!r}")


def _download(page, suffix: str) -> bytes:
    page.wait_for_selector(f".eoslab-export-{suffix}", state="attached", timeout=60_000)
    href = page.get_attribute(f".eoslab-export-{suffix}", "href")
    return base64.b64decode(href.split(",", 1)[1])


def test_adam_overlay_and_exports(voila, browser_page):
    page, log = browser_page
    open_app(page, _url(voila), selector=".eoslab-playground", server=voila)
    for name, value in TINY.items():
        _fill(page, name, value)
    _choose(page, "optimizer", "Adam")
    _fill(page, "lr", 0.002)
    _run(page, r"^finished")
    text = _wait_chart_text(page, "preconditioned sharpness", "threshold Adam")
    screenshot(page, "playground-adam")
    svg = _download(page, "svg").decode()
    assert "preconditioned sharpness" in svg and svg.lstrip().startswith("<svg")
    rows = [r for r in csv.DictReader(io.StringIO(_download(page, "csv").decode()))
            if r.get("dataset") == "rows"]
    assert [int(r["step"]) for r in rows] == list(range(0, 31, 10))
    assert all(float(r["loss"]) > 0 for r in rows)
    assert any(r["precond_sharpness"] for r in rows)
    _fill(page, "lr", 0.004)
    _run(page, r"^finished")
    text = _wait_chart_text(page, "adam lr=0.002", "adam lr=0.004")
    assert "preconditioned sharpness" in text
    screenshot(page, "playground-two-runs")
    assert page.locator(".eoslab-runs option").count() == 2
    assert not [e for e in log.console_errors if e.startswith("pageerror")], log.console_errors
    assert log.outside() == [], log.outside()


def test_stop_mid_run_and_divergence(voila, browser_page):
    page, log = browser_page
    open_app(page, _url(voila), selector=".eoslab-playground", server=voila)
    for name, value in {**TINY, "steps": 200000, "sharpness-every": 0}.items():
        _fill(page, name, value)
    page.locator(".eoslab-run").first.click()
    wait_status(page, r"^training", timeout_s=120)
    page.wait_for_timeout(1500)
    page.locator(".eoslab-stop").first.click()
    status = wait_status(page, r"^stopped at step \d+", timeout_s=120)
    assert int(status.split("step")[1].split()[0]) < 200000
    _fill(page, "steps", 30)
    _fill(page, "lr", 50)
    status = _run(page, r"^diverged at step \d+ \(loss")
    screenshot(page, "playground-diverged")
    _fill(page, "lr", 0.05)
    _run(page, r"^finished")
    assert "Traceback" not in page.inner_text("body")
    assert not [e for e in log.console_errors if e.startswith("pageerror")], log.console_errors
