"""Real-browser tests: one ``eoslab serve`` per session, headless Debian Chromium via Playwright.

Chromium comes from ``scripts/install-browser`` (Debian's package, never ``playwright
install``); these fixtures run that script when ``/usr/bin/chromium`` is missing.  Every
test in this folder is marked ``browser``.  Screenshots go to ``artifacts/screenshots/`` and
each page's request log to ``artifacts/network/`` (both gitignored).

The chapters are the notebooks of ``book/`` named ``NN_slug.ipynb`` other than the index,
so a new chapter joins these tests by existing.

A browser test whose Chromium *browser process* dies under it (a crash signal or a kill: the
context closes without the test closing it) fails with :class:`BrowserCrashed` and is run
once more in a fresh browser (``pytest-rerunfailures``, ``only_rerun=[BrowserCrashed]``).
Any other failure, a renderer crash or a page the test closed included, fails at once.
A crash signal to the browser process (SIGSEGV, SIGABRT) leaves crashpad's lines in its
log; SIGKILL, the OOM killer's signal, leaves none.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from eoslab.serve import COSMETIC_HOSTS

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
FIXTURES = ROOT / "tests" / "fixtures"
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
LOCAL_HOSTS = ("127.0.0.1", "localhost")
# a page executes its notebook (torch import, quick training) before it shows, on a machine
# that may be shared with other jobs
PAGE_TIMEOUT_MS = 240_000


def chapters(book: Path = BOOK) -> list:
    """The chapter notebooks (``NN_slug.ipynb``, not the index), in order."""
    return sorted(p.name for p in book.glob("[0-9][0-9]_*.ipynb") if not p.name.startswith("00_"))


class BrowserCrashed(Exception):
    """The Chromium browser process exited while a test used it: the browser's fault, not the
    book's, so the test is run once more (see the module's docstring)."""


RERUN_ON_BROWSER_CRASH = pytest.mark.flaky(reruns=1, only_rerun=[BrowserCrashed])
# the profiles of browsers whose process exited without close_browser(), in order
CRASHED_PROFILES: list = []
_CLOSING: set = set()


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)
            item.add_marker(RERUN_ON_BROWSER_CRASH)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """A failure during which a browser process exited becomes :class:`BrowserCrashed`."""
    crashed_before = len(CRASHED_PROFILES)
    try:
        return (yield)
    except Exception as error:
        if len(CRASHED_PROFILES) == crashed_before:
            raise
        raise BrowserCrashed(
            f"the Chromium browser process of profile {CRASHED_PROFILES[-1]} exited while "
            f"the test ran ({type(error).__name__}: {str(error).splitlines()[0]})") from error


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A server subprocess in its own process group (so its kernels stop with it)."""

    def __init__(self, argv: list, env: dict, port: int, log: Path, ready_path: str = "/"):
        self.port, self.log_path = port, log
        self.url = f"http://127.0.0.1:{port}/"
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "w")  # noqa: SIM115 (lives as long as the server; closed in stop)
        self.process = subprocess.Popen(argv, env=env, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        cwd=str(ROOT))
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n"
                                   + self.log_tail())
            try:
                with urllib.request.urlopen(self.url.rstrip("/") + ready_path, timeout=5):
                    break
            except OSError as err:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("server did not answer in 180 s:\n"
                                       + self.log_tail()) from err
                time.sleep(0.5)

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


def serve_book(tmp: Path, book: Path = BOOK, pool_size: int = 1, cull_idle_timeout: float = 60,
               cull_interval: float = 10, name: str = "voila",
               cull_connected: bool = True) -> Server:
    """``eoslab serve`` on ``book`` (quick preset, a fresh store) on a free port."""
    port = free_port()
    argv = [sys.executable, "-m", "eoslab.cli", "serve", "--book", str(book),
            "--port", str(port), "--pool-size", str(pool_size), "--quick",
            "--cull-idle-timeout", str(cull_idle_timeout), "--cull-interval", str(cull_interval),
            # no kernel cap: a closed browser context leaves its page's kernel to culling,
            # so the session's pages add up (tests/test_serve_hardening.py tests the cap)
            "--max-kernels", "0"]
    if not cull_connected:
        argv.append("--keep-connected")
    env = {**os.environ, "EOSLAB_QUICK": "1", "EOSLAB_STORE": str(tmp / "store"),
           "PYTHONUNBUFFERED": "1"}
    return Server(argv, env, port, ARTIFACTS / "logs" / f"{name}-{port}.log")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        out = subprocess.run([str(ROOT / "scripts" / "install-browser")], capture_output=True,
                             text=True, check=False)
        assert out.returncode == 0 and os.access(CHROMIUM, os.X_OK), (
            "scripts/install-browser could not install chromium:\n" + out.stdout + out.stderr)
    return CHROMIUM


@pytest.fixture(scope="session")
def playwright_instance(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def voila(tmp_path_factory):
    """One ``eoslab serve`` of the book for the whole session.

    No pre-heated pool here: a pool re-executes every chapter in the background after each
    visit, which on a machine with few cores starves the pages under test (the benchmark
    covers the pooled path); culling is slow enough never to hit a page while a test drives
    it.
    """
    server = serve_book(tmp_path_factory.mktemp("voila"), pool_size=0, cull_idle_timeout=600,
                        cull_interval=30)
    yield server
    server.stop()


class NetLog:
    """Every request a browser context makes, and the ones that failed."""

    def __init__(self, context):
        self.requests, self.failures, self.console_errors = [], [], []
        context.on("request", lambda r: self.requests.append(r.url))
        context.on("requestfailed", lambda r: self.failures.append((r.url, r.failure)))
        context.on("response", lambda r: r.status >= 400 and self.failures.append(
            (r.url, f"HTTP {r.status}")))

    def watch(self, page) -> None:
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        page.on("pageerror", lambda e: self.console_errors.append(f"pageerror: {e}"))

    @staticmethod
    def host(url: str) -> str:
        return urlparse(url).hostname or ""

    def outside(self) -> list:
        """Requests to hosts other than the local server (data: and blob: URLs excluded)."""
        return [u for u in self.requests
                if urlparse(u).scheme in ("http", "https", "ws", "wss")
                and self.host(u) not in LOCAL_HOSTS]

    def bad_failures(self) -> list:
        """Failed requests except outside ones documented as cosmetic."""
        return [(u, why) for u, why in self.failures
                if not (self.host(u) in COSMETIC_HOSTS and self.host(u) not in LOCAL_HOSTS)]

    def save(self, name: str) -> Path:
        path = ARTIFACTS / "network" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"requests": self.requests, "failures": self.failures,
                                    "console_errors": self.console_errors}, indent=1))
        return path


def launch(playwright_instance, profile: Path):
    """A fresh headless Chromium profile, launched as CI launches it.

    Close it with :func:`close_browser`: a context that closes otherwise (its browser process
    exited) is recorded in ``CRASHED_PROFILES``.
    """
    context = playwright_instance.chromium.launch_persistent_context(
        str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
        viewport={"width": 1280, "height": 900})
    context.on("close", lambda _: browser_closed(context, profile))
    return context


def browser_closed(context, profile: Path) -> None:
    if id(context) in _CLOSING:
        _CLOSING.discard(id(context))
    else:
        CRASHED_PROFILES.append(str(profile))


def close_browser(context) -> None:
    """Close a context from :func:`launch` (a no-op when its browser is already gone)."""
    _CLOSING.add(id(context))
    context.close()


def crashed(profile: Path) -> bool:
    return str(profile) in CRASHED_PROFILES


@pytest.fixture
def browser_page(playwright_instance, tmp_path, request):
    """``(page, netlog)`` in a fresh profile; a screenshot and the request log are kept."""
    profile = tmp_path / "profile"
    context = launch(playwright_instance, profile)
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    log = NetLog(context)
    page = context.new_page()
    log.watch(page)
    yield page, log
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    try:
        if not (crashed(profile) or page.is_closed()):  # else nothing left to photograph
            screenshot(page, name + "-end")
    finally:
        log.save(name)
        close_browser(context)


# Voila scrolls inside a container, so Playwright's full_page capture stops at the viewport:
# the page is made as tall as its tallest scrolled content for the capture.
CONTENT_HEIGHT_JS = """() => Math.max(document.documentElement.scrollHeight,
    ...Array.from(document.querySelectorAll('body *'))
        .filter(e => e.scrollHeight > e.clientHeight + 1
                     && getComputedStyle(e).overflowY !== 'visible')
        .map(e => e.scrollHeight + e.getBoundingClientRect().top))"""


def capture(page, path: Path, max_height: int = 8000) -> Path:
    """A PNG of the whole page at its current width (content below the fold included)."""
    size = page.viewport_size
    path.parent.mkdir(parents=True, exist_ok=True)
    height = min(max_height, max(size["height"], int(page.evaluate(CONTENT_HEIGHT_JS))))
    page.set_viewport_size({"width": size["width"], "height": height})
    try:
        page.wait_for_timeout(300)
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    return path


def screenshot(page, name: str) -> Path:
    return capture(page, ARTIFACTS / "screenshots" / f"{name}.png")


# -- widgets ---------------------------------------------------------------------------------
ERROR_TEXT = "There was an error when executing cell"


def open_app(page, url: str, selector: str = ".eoslab-app", server: Server | None = None) -> float:
    """Open a Voila app and wait for ``selector``; returns the seconds it took.

    Fails at once when Voila reports a cell error, with the page's text and the Python
    errors of the server's log (the page hides tracebacks).
    """
    start = time.monotonic()
    page.goto(url, wait_until="commit")
    page.wait_for_selector(f"{selector}, :text('{ERROR_TEXT}')", state="visible")
    body = page.inner_text("body")
    if ERROR_TEXT in body:
        errors = ""
        if server is not None:
            found = re.findall(r"'ename': '([^']*)', 'evalue': (\"[^\"]*\"|'[^']*')",
                               server.log_tail(200_000))
            errors = "\n".join(f"{name}: {value}" for name, value in dict.fromkeys(found))
        raise AssertionError(f"{url} failed to execute:\n{body[-1500:]}\nserver errors:\n"
                             f"{errors}")
    return time.monotonic() - start


def chart_snapshot(page, root: str = "") -> str:
    """The chart's rendered DOM (svg markup and canvas pixels) as one string."""
    return page.evaluate("""(root) => {
        const el = document.querySelector(root + ' .eoslab-chart');
        if (!el) return '';
        const canvases = [...el.querySelectorAll('canvas')].map(c => c.toDataURL());
        return el.innerHTML + canvases.join('');
    }""", root)


def wait_chart(page, root: str = "") -> None:
    page.wait_for_selector(f"{root} .eoslab-chart svg, {root} .eoslab-chart canvas".strip(),
                           state="attached")


def readout(page, css: str, root: str = "") -> str:
    return page.inner_text(f"{root} .{css} .widget-readout".strip())


def set_slider(page, css: str, value, root: str = "") -> None:
    """Type ``value`` into a slider's readout (ipywidgets clamps it to the slider's range)."""
    box = page.locator(f"{root} .{css} .widget-readout".strip()).first
    box.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")


def slider_max(page, css: str, root: str = "") -> float:
    handle = page.locator(f"{root} .{css} [role=slider]".strip()).first
    return float(handle.get_attribute("aria-valuemax"))


def wait_changed(page, before: str, root: str = "", timeout_s: float = 120) -> str:
    """Wait until the chart differs from ``before``; returns the new snapshot."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = chart_snapshot(page, root)
        if now and now != before:
            return now
        page.wait_for_timeout(100)
    raise AssertionError(f"the chart did not change within {timeout_s} s")


def status_text(page, root: str = "") -> str:
    return page.inner_text(f"{root} .eoslab-status".strip())


def wait_status(page, pattern: str, root: str = "", timeout_s: float = 180) -> str:
    """Wait until the status line matches ``pattern`` (a regex, case-insensitive)."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = status_text(page, root)
        if re.search(pattern, text, re.IGNORECASE):
            return text
        page.wait_for_timeout(200)
    raise AssertionError(f"status never matched {pattern!r}; last: {text!r}")


def has_run_button(page, root: str = "") -> bool:
    return page.locator(f"{root} .eoslab-run".strip()).count() > 0


def busy_status(text: str) -> bool:
    """Whether ``text`` is the lifecycle's own line while a run starts or stops
    ("training (<preset>) ...", "stopping ..."), not a result's sentence (which may begin
    "training (loss falling): ...")."""
    text = text.strip().lower()
    return text.startswith("stopping") or (text.startswith("training (")
                                           and text.endswith("..."))


def finish_run(page, root: str = "", timeout_s: float = 240) -> str:
    """Let the app settle after a control changed; returns the status line.

    Apps with a Run button either start training on the change (auto-run) or wait for
    Run (their status then says "press Run"): press it in that case, then wait until Stop
    is disabled again.  Apps without one update synchronously.
    """
    if not has_run_button(page, root):
        page.wait_for_timeout(300)
        return status_text(page, root)
    run = page.locator(f"{root} .eoslab-run".strip()).first
    stop = page.locator(f"{root} .eoslab-stop".strip()).first
    page.wait_for_timeout(500)
    clicked = False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = status_text(page, root)
        if stop.is_disabled():
            if "press run" in text.lower() and not clicked:
                run.click()
                clicked = True
                page.wait_for_timeout(500)
                continue
            if not busy_status(text):
                return text
        page.wait_for_timeout(250)
    raise AssertionError(f"the app did not settle within {timeout_s} s; status: "
                         f"{status_text(page, root)!r}")


LR = "eoslab-lr-slider"


def exercise_app(page, name: str, root: str = "") -> None:
    """The chapter contract, on an app already on screen under ``root``.

    Apps with a step-size slider (``eoslab-lr-slider``): a smaller step size (and Run,
    where the app has it) redraws the chart; the slider's largest step size gives a new
    status line (a divergence in most chapters; the page suite checks that a divergence is
    reported exactly when it happens); moving back redraws the chart and changes the status
    again (the app still works).  Apps without one (e.g. mode connectivity) must have Run,
    and running again must redraw the chart.  Screenshots ``<name>-loaded`` and
    ``<name>-diverged`` (or ``<name>-rerun``) are kept.
    """
    finish_run(page, root)
    screenshot(page, f"{name}-loaded")
    if page.locator(f"{root} .{LR}".strip()).count() == 0:
        assert has_run_button(page, root), f"{name}: no step-size slider and no Run button"
        before = chart_snapshot(page, root)
        page.locator(f"{root} .eoslab-run".strip()).first.click()
        wait_changed(page, before, root, timeout_s=240)
        finish_run(page, root)
        screenshot(page, f"{name}-rerun")
        return
    start = float(readout(page, LR, root))
    before = chart_snapshot(page, root)
    set_slider(page, LR, round(start / 2, 3), root)
    finish_run(page, root)
    wait_changed(page, before, root)
    assert abs(float(readout(page, LR, root)) - start / 2) <= 0.01

    # the slider's largest step size: a divergence in most chapters; where the range is set
    # from the edge so that its top still trains (02's runs hover at the edge), a new result
    halved = status_text(page, root)
    set_slider(page, LR, slider_max(page, LR, root), root)
    finish_run(page, root)
    deadline = time.monotonic() + 60
    while status_text(page, root) == halved and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    diverged_text = status_text(page, root)
    assert diverged_text != halved, f"{name}: no new status at the slider's maximum"
    screenshot(page, f"{name}-diverged")

    diverged = chart_snapshot(page, root)
    set_slider(page, LR, start, root)
    finish_run(page, root)
    wait_changed(page, diverged, root)
    deadline = time.monotonic() + 60
    while status_text(page, root) == diverged_text:  # the app answered the move back
        assert time.monotonic() < deadline, f"status stuck at {diverged_text!r}"
        page.wait_for_timeout(200)
