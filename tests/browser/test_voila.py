"""Each chapter served by ``eoslab serve`` works in a real Chromium, offline.

For every chapter: the page shows its sliders and a rendered Vega chart; moving the
step-size slider (and running, where the app has Run) redraws the chart; the largest step
size on the slider diverges and says so, and the app still works afterwards; the page asks
nothing of outside hosts beyond the ones :data:`eoslab.serve.COSMETIC_HOSTS` documents.
"""

import time
import urllib.request

import pytest

from eoslab.serve import COSMETIC_HOSTS, chapter_url

from .conftest import (
    chapters,
    chart_snapshot,
    exercise_app,
    open_app,
    screenshot,
    set_slider,
    wait_changed,
    wait_chart,
)

LR = "eoslab-lr-slider"  # the step-size slider of every chapter app


def test_the_book_has_chapters():
    assert chapters(), "book/ holds no NN_slug.ipynb chapter"


@pytest.mark.parametrize("notebook", chapters())
def test_chapter_app_in_voila(voila, browser_page, notebook):
    page, log = browser_page
    stem = notebook.removesuffix(".ipynb")
    open_app(page, chapter_url(voila.url, notebook), server=voila)
    assert page.locator(f".{LR}").count() <= 1
    sliders = page.locator(".eoslab-app .widget-slider")
    assert sliders.count() >= 1 and sliders.first.is_visible()
    wait_chart(page)
    drawn = chart_snapshot(page)
    assert "mark-" in drawn or "data:image/png" in drawn, drawn[:500]  # vega drew marks
    exercise_app(page, f"voila-{stem}")
    assert not [e for e in log.console_errors if e.startswith("pageerror")], log.console_errors

    # offline: nothing asked of outside hosts (the template drops Voila's CDN links)
    assert log.outside() == [], log.outside()
    assert log.bad_failures() == [], log.bad_failures()


def test_index_links_every_chapter(voila, browser_page):
    page, log = browser_page
    page.goto(chapter_url(voila.url, "00_index.ipynb"))
    page.wait_for_selector("a[href$='.ipynb']", state="attached")
    hrefs = page.eval_on_selector_all("a[href$='.ipynb']", "els => els.map(a => a.href)")
    for notebook in chapters():
        assert chapter_url(voila.url, notebook) in hrefs, (notebook, hrefs)
    screenshot(page, "voila-00_index")
    assert log.outside() == [] and log.bad_failures() == [], (log.outside(), log.failures)


def test_tree_page_asks_only_cosmetic_outside_hosts(voila, browser_page):
    """Voila's listing at ``/`` links FontAwesome 4 outside any template block: documented
    as cosmetic (folder icons); nothing else may leave the machine."""
    page, log = browser_page
    page.goto(voila.url)
    page.wait_for_selector("text=00_index.ipynb", state="visible")  # a JS file list
    for notebook in chapters():
        assert page.locator(f"text={notebook}").count() >= 1, notebook
    assert {log.host(u) for u in log.outside()} <= set(COSMETIC_HOSTS), log.outside()
    # the listing's script polls /api/kernels, which Voila does not serve: a 404, harmless
    failures = [(u, why) for u, why in log.bad_failures() if "/api/kernels" not in u]
    assert failures == [], failures
    with urllib.request.urlopen(chapter_url(voila.url, "00_index.ipynb")) as reply:
        assert reply.status == 200


def test_slider_moves_update_the_chart_in_place(voila, browser_page):
    """A step-size move streams new data into the Vega view the page already has: the chart
    changes, but it is embedded once (no re-compiling of the figure per move; its cost is
    timed in benchmarks/bench_app.md)."""
    page, log = browser_page
    open_app(page, chapter_url(voila.url, "01_quadratic_stability.ipynb"), server=voila)
    wait_chart(page)
    view = ".eoslab-chart[data-embeds], .eoslab-chart [data-embeds]"
    page.wait_for_selector(view, state="attached")
    embeds = page.get_attribute(view, "data-embeds")
    before = chart_snapshot(page)
    handle = page.locator(f".{LR} .noUi-handle").first
    for key in ("ArrowLeft", "ArrowLeft", "ArrowRight"):
        updates = page.get_attribute(view, "data-updates") or "0"
        handle.focus()
        handle.press(key)
        page.wait_for_function(
            "([css, n]) => (document.querySelector(css).dataset.updates || '0') !== n",
            arg=[view, updates])
    assert chart_snapshot(page) != before
    assert page.get_attribute(view, "data-embeds") == embeds == "1"
    assert not [e for e in log.console_errors if e.startswith("pageerror")], log.console_errors


# anywidget 0.11 gives a model's module 2 s (``AbortSignal.timeout(2000)``) to load; on this
# page that deadline passes at the first microtask checkpoint, before any module can have
# loaded, so anywidget always gives up on the chart's model.  (A timer, however short, can
# lose the race to a fast module load; the microtask cannot.)
MISSED_DEADLINE = """
const timeout = AbortSignal.timeout.bind(AbortSignal);
AbortSignal.timeout = (ms) => {
    if (ms !== 2000) return timeout(ms);
    const passed = new AbortController();
    queueMicrotask(() => passed.abort());
    return passed.signal;
};
"""
GAVE_UP = "pageerror: [anywidget] Failed to initialize model."


def test_the_chart_updates_after_anywidget_gave_up_on_its_model(voila, browser_page):
    """anywidget drops every kernel message to a model whose module loaded past its deadline,
    which a busy page misses; a chart on that model is drawn once and never changes.  Its
    figure and data travel on a plain ipywidgets model (``eoslab.ui.vega_view``), so with
    the deadline always missed a slider move still redraws the data and a preset change
    still draws a new figure."""
    page, log = browser_page
    page.add_init_script(MISSED_DEADLINE)
    open_app(page, chapter_url(voila.url, "01_quadratic_stability.ipynb"), server=voila)
    wait_chart(page)
    view = ".eoslab-chart[data-embeds], .eoslab-chart [data-embeds]"
    page.wait_for_selector(view, state="attached")
    deadline = time.monotonic() + 30  # the page error may reach Python after the chart
    while GAVE_UP not in log.console_errors and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert GAVE_UP in log.console_errors, log.console_errors  # the failure was provoked
    before = chart_snapshot(page)
    set_slider(page, LR, 0.3)
    moved = wait_changed(page, before, timeout_s=60)
    assert page.get_attribute(view, "data-updates") == "1"
    page.select_option(".eoslab-preset select", index=1)
    page.wait_for_function("(css) => document.querySelector(css).dataset.embeds === '2'",
                           arg=view)
    wait_changed(page, moved, timeout_s=60)
    screenshot(page, "voila-missed-deadline")
    assert [e for e in log.console_errors if e.startswith("pageerror")] == [GAVE_UP]
