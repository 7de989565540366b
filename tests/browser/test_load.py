"""Load: 8 browser pages at once on one ``eoslab serve``, then their kernels are culled.

A tab that disappears without its unload hook (a crash, a lost network, Playwright's
``page.close()``) leaves its kernel running, memory and all.  The server's idle-kernel
culling must reclaim them.  This test serves chapter 01 alone with a short cull timeout,
opens 8 pages concurrently, runs each to completion, closes them, and checks that the
kernels go away and that the resident memory of the Voila process and its kernels returns
near its baseline.  It prints the figures (``-s`` shows them).
"""

import shutil
import time

import psutil
import pytest

from eoslab.serve import chapter_url

from .conftest import (
    BOOK,
    ERROR_TEXT,
    LR,
    chart_snapshot,
    close_browser,
    finish_run,
    launch,
    readout,
    screenshot,
    serve_book,
    set_slider,
    wait_changed,
    wait_chart,
)

PAGES = 8
CHAPTER = "01_quadratic_stability.ipynb"
CULL_IDLE_S, CULL_INTERVAL_S = 60, 2  # > the time a loaded page takes to connect
MB = 2**20


def tree_rss(pid: int, seen: set | None = None) -> tuple:
    """(resident bytes of the process and all its descendants, number of kernels).

    The kernels' process ids are added to ``seen`` when given.
    """
    root = psutil.Process(pid)
    procs = [root, *root.children(recursive=True)]
    total, kernels = 0, 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
            if "ipykernel" in " ".join(proc.cmdline()):
                kernels += 1
                if seen is not None:
                    seen.add(proc.pid)
        except psutil.NoSuchProcess:
            pass
    return total, kernels


def voila_pid(server) -> int:
    """The Voila process (``eoslab serve`` runs it as a child)."""
    for child in psutil.Process(server.process.pid).children(recursive=True):
        if child.cmdline()[1:3] == ["-m", "voila"]:
            return child.pid
    raise AssertionError("no voila process under eoslab serve")


def settled_rss(pid: int, kernels: int, timeout_s: float = 180) -> tuple:
    """Wait until ``kernels`` kernels run and the tree's RSS holds still for 3 s."""
    deadline = time.monotonic() + timeout_s
    last = tree_rss(pid)
    while time.monotonic() < deadline:
        time.sleep(3)
        now = tree_rss(pid)
        if now[1] == kernels and abs(now[0] - last[0]) < 5 * MB:
            return now
        last = now
    return last


def wait_kernels(pid: int, at_most: int, timeout_s: float) -> tuple:
    deadline = time.monotonic() + timeout_s
    while True:
        rss, kernels = tree_rss(pid)
        if kernels <= at_most or time.monotonic() > deadline:
            return rss, kernels
        time.sleep(1)


@pytest.mark.slow
def test_eight_pages_then_culled_back_to_baseline(playwright_instance, tmp_path):
    book = tmp_path / "book"
    book.mkdir()
    shutil.copy(BOOK / CHAPTER, book / CHAPTER)
    # no pre-heated pool: Voila hands out pooled kernels one at a time (each request waits
    # for the refill it triggered), which would serialise the 8 pages instead of loading them
    # together; see benchmarks/bench_app.md
    # --keep-connected: open pages keep their kernels however long the others take; what is
    # tested is that a page gone without its unload hook loses its kernel
    server = serve_book(tmp_path, book=book, pool_size=0, cull_idle_timeout=CULL_IDLE_S,
                        cull_interval=CULL_INTERVAL_S, name="voila-load", cull_connected=False)
    try:
        pid = voila_pid(server)
        base_rss, base_kernels = settled_rss(pid, kernels=0)  # Voila alone, idle
        context = launch(playwright_instance, tmp_path / "profile")
        context.set_default_timeout(300_000)
        pages = [context.new_page() for _ in range(PAGES)]
        consoles = [[] for _ in pages]  # what each page logged, for the failure message
        for page, log in zip(pages, consoles):
            page.on("console", lambda m, log=log: log.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e, log=log: log.append(f"pageerror: {e}"))
        start = time.monotonic()
        for page in pages:
            page.goto(chapter_url(server.url, CHAPTER), wait_until="commit")
        loaded, seen, peak_rss, peak_kernels = [], set(), 0, 0
        for i, page in enumerate(pages):  # each page is run to completion once it is there
            loaded.append(_wait_app(page, start))
            page.bring_to_front()  # keyboard focus: the slider's readout takes typed text
            wait_chart(page)
            before = chart_snapshot(page)
            set_slider(page, LR, 0.3)
            finish_run(page)
            try:
                wait_changed(page, before, timeout_s=60)
            except AssertionError as err:
                screenshot(page, f"load-page-{i + 1}-stuck")
                state = page.evaluate("""() => [...document.querySelectorAll(
                    '.eoslab-chart, .eoslab-chart *')].filter(e => e.dataset.embeds)
                    .map(e => JSON.stringify(e.dataset))""")
                raise AssertionError(f"page {i + 1}: the chart did not change; slider "
                                     f"reads {readout(page, LR)}; view {state}; console "
                                     f"{consoles[i][-20:]}; {server.log_tail(1500)}") from err
            rss, kernels = tree_rss(pid, seen)
            peak_rss, peak_kernels = max(peak_rss, rss), max(peak_kernels, kernels)
        all_done = time.monotonic() - start
        screenshot(pages[-1], "load-page-8")
        for page in pages:
            page.close()  # no unload hook: only culling can reclaim the kernel
        close_browser(context)
        closed = time.monotonic()
        after_rss, after_kernels = wait_kernels(pid, base_kernels, 180)
        culled_s = time.monotonic() - closed
        time.sleep(3)
        after_rss, after_kernels = tree_rss(pid)
    finally:
        server.stop()
    print(f"\nload: {PAGES} pages of {CHAPTER}; page ready in "
          f"{min(loaded):.1f}..{max(loaded):.1f} s, all run in {all_done:.1f} s")
    print(f"load: RSS baseline {base_rss / MB:.0f} MB ({base_kernels} kernels), peak "
          f"{peak_rss / MB:.0f} MB ({peak_kernels} kernels, "
          f"{(peak_rss - base_rss) / MB / max(peak_kernels - base_kernels, 1):.0f} MB each; "
          f"{len(seen)} kernels in all), "
          f"after culling {after_rss / MB:.0f} MB ({after_kernels} kernels, {culled_s:.0f} s "
          f"after the pages closed)")
    gave_up = sum(any("Failed to initialize model" in line for line in c) for c in consoles)
    print(f"load: anywidget missed its 2 s module deadline on {gave_up} of {PAGES} pages "
          "(their charts updated all the same)")
    assert len(seen) >= PAGES, f"{PAGES} pages but {len(seen)} kernels"
    assert after_kernels <= base_kernels, f"{after_kernels - base_kernels} kernels not culled"
    grown = after_rss - base_rss
    assert grown <= max(200 * MB, 0.15 * (peak_rss - base_rss)), (
        f"memory did not return near baseline: +{grown / MB:.0f} MB")


def _wait_app(page, start: float) -> float:
    """Seconds from ``start`` until the page shows its app (fails on a cell error)."""
    page.wait_for_selector(f".eoslab-app, :text('{ERROR_TEXT}')", state="visible")
    assert ERROR_TEXT not in page.inner_text("body"), page.inner_text("body")[-2000:]
    return time.monotonic() - start
