"""How fast do the served apps feel?  Two questions, measured in a real headless Chromium.

1. **Time to first widget** (TTFW) of every chapter under ``eoslab serve``, as a ratio to
   the trivial one-slider notebook (``tests/fixtures/one_slider.ipynb``) served the same
   way, by the same server, in the same run (target: ratio <= 1.5).  Measured from
   ``page.goto`` to the step-size slider being visible, once with the deployment's
   pre-heated kernel pool (``--pool-size 1``, the default) and once cold (``--pool-size 0``).
   Each repetition closes its page with the unload hook, so Voila shuts the kernel down,
   and waits for the pool to refill before the next one.
2. **Slider-to-chart latency** of chapter 01 (quick preset; target: median <= 150 ms): a
   key press on the step-size slider's handle, timed in the page from the ``keydown``
   event to the first DOM mutation inside ``.eoslab-chart`` (MutationObserver), and to the
   last one of that burst (the redraw finished).

Run: ``python benchmarks/bench_app.py [--reps 5] [--moves 20] [--json out.json]`` (needs
``scripts/install-browser``).  Figures go to stdout; benchmarks/bench_app.md records them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eoslab.serve import chapter_url  # noqa: E402 - after the sys.path line
from tests.browser.conftest import (  # noqa: E402
    BOOK,
    ERROR_TEXT,
    FIXTURES,
    chapters,
    launch,
    serve_book,
)

BASELINE = "one_slider.ipynb"
FIRST_WIDGET = ".eoslab-lr-slider"

# installed before the page loads: timestamps of the kernel websocket's traffic, so the
# latency splits into browser -> kernel, kernel work + transport, and the chart's redraw
WS_JS = """(() => {
    window.__ws = [];
    const Native = window.WebSocket;
    const text = (data) => typeof data === 'string' ? data
        : (data instanceof ArrayBuffer ? new TextDecoder().decode(data) : '');
    window.WebSocket = function (...args) {
        const ws = new Native(...args);
        const send = ws.send.bind(ws);
        ws.send = (data) => {
            const t = text(data);
            if (t.includes('comm_msg'))
                window.__ws.push({dir: 'out', t: performance.now(), n: t.length});
            return send(data);
        };
        ws.addEventListener('message', (event) => {
            const t = text(event.data);
            if (t.includes('"spec"') || t.includes('"datasets"'))
                window.__ws.push({dir: 'in', t: performance.now(), n: t.length});
        });
        return ws;
    };
    window.WebSocket.prototype = Native.prototype;
    Object.assign(window.WebSocket, {CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3});
})();"""

LATENCY_JS = """() => {
    const chart = document.querySelector('.eoslab-chart');
    window.__eos = {t0: null, first: null, last: null, drawn: null};
    document.addEventListener('keydown', () => {
        window.__eos = {t0: performance.now(), first: null, last: null, drawn: null};
    }, true);
    new MutationObserver((records) => {
        const s = window.__eos, now = performance.now();
        if (s.t0 === null) return;
        if (s.first === null) s.first = now;
        s.last = now;
        // VegaView sets data-updates once the view has re-run and drawn the new data
        if (s.drawn === null && records.some(r => r.attributeName === 'data-updates'))
            s.drawn = now;
    }).observe(chart, {subtree: true, childList: true, attributes: true, characterData: true});
}"""


def kernels_idle(server, expected: int, timeout_s: float = 300) -> None:
    """Wait until at least ``expected`` kernels run under the server, all of them idle."""
    root = psutil.Process(server.process.pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        kernels = [p for p in root.children(recursive=True)
                   if "ipykernel" in " ".join(p.cmdline())]
        if len(kernels) >= expected:
            busy = sum(p.cpu_percent(interval=None) for p in kernels)
            time.sleep(1.0)
            busy = sum(p.cpu_percent(interval=None) for p in kernels)
            if busy < 5:
                return
        else:
            time.sleep(1.0)
    raise RuntimeError(f"the server never settled at {expected} idle kernels")


def time_to_first_widget(pw, server, notebooks, reps, pooled, tmp) -> dict:
    times = {nb: [] for nb in notebooks}
    for rep in range(reps):
        for nb in notebooks:
            kernels_idle(server, len(notebooks) if pooled else 0)
            context = launch(pw, tmp / f"profile-{pooled}-{rep}-{nb}")
            page = context.new_page()
            start = time.monotonic()
            page.goto(chapter_url(server.url, nb), wait_until="commit")
            page.wait_for_selector(f"{FIRST_WIDGET}, :text('{ERROR_TEXT}')",
                                   state="visible", timeout=600_000)
            elapsed = time.monotonic() - start
            if ERROR_TEXT in page.inner_text("body"):
                raise RuntimeError(f"{nb} failed to execute; see {server.log_path}")
            times[nb].append(elapsed)
            page.close(run_before_unload=True)  # Voila shuts the kernel down
            context.close()
    return times


def slider_latency(pw, server, moves, tmp) -> dict:
    context = launch(pw, tmp / "profile-latency")
    page = context.new_page()
    page.add_init_script(WS_JS)
    kernels_idle(server, 1)
    page.goto(chapter_url(server.url, "01_quadratic_stability.ipynb"), wait_until="commit")
    page.wait_for_selector(".eoslab-chart svg, .eoslab-chart canvas", state="attached",
                           timeout=600_000)
    page.evaluate(LATENCY_JS)
    handle = page.locator(f"{FIRST_WIDGET} .noUi-handle").first
    first, last, drawn, sent, received, sizes = [], [], [], [], [], []
    for i in range(moves):
        page.evaluate("() => { window.__ws = []; }")
        handle.focus()
        handle.press("ArrowRight" if i % 2 == 0 else "ArrowLeft")
        deadline = time.monotonic() + 30
        state = None
        while time.monotonic() < deadline:
            page.wait_for_timeout(50)
            state = page.evaluate("() => window.__eos")
            # the redraw is over once 300 ms pass without a mutation
            if state["last"] is not None and \
                    page.evaluate("() => performance.now()") - state["last"] > 300:
                break
        if state is None or state["first"] is None:
            raise RuntimeError(f"move {i}: the chart did not change within 30 s")
        first.append(state["first"] - state["t0"])
        last.append(state["last"] - state["t0"])
        if state["drawn"] is not None:
            drawn.append(state["drawn"] - state["t0"])
        frames = page.evaluate("() => window.__ws")
        out = [f["t"] for f in frames if f["dir"] == "out" and f["t"] >= state["t0"]]
        back = [f for f in frames if f["dir"] == "in" and f["t"] >= state["t0"]]
        if out and back:
            sent.append(out[0] - state["t0"])
            received.append(back[0]["t"] - state["t0"])
            sizes.append(back[0]["n"])
    context.close()
    return {"first_mutation_ms": first, "redraw_done_ms": last, "view_drawn_ms": drawn,
            "comm_sent_ms": sent, "spec_received_ms": received, "spec_message_chars": sizes}


def kernel_update_ms(moves: int) -> list:
    """The kernel's share: chapter 01's slider callback (simulate + datasets + send) here."""
    os.environ["EOSLAB_QUICK"] = "1"
    from eoslab.chapters.ch01_quadratic_stability.app import QuadraticApp

    app = QuadraticApp()
    times = []
    for i in range(moves):
        start = time.perf_counter()
        app.lr.value = round(app.lr.value + (0.01 if i % 2 == 0 else -0.01), 2)
        times.append(1000 * (time.perf_counter() - start))
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="TTFW repetitions per notebook")
    parser.add_argument("--moves", type=int, default=20, help="slider moves for the latency")
    parser.add_argument("--json", help="also write the raw figures here")
    parser.add_argument("--cold-reps", type=int, default=3,
                        help="TTFW repetitions without the pool (0: skip)")
    parser.add_argument("--latency-only", action="store_true", help="skip the TTFW part")
    parser.add_argument("--chapters", nargs="*", default=None,
                        help="chapter notebooks to time (default: every chapter of book/)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="bench_app-"))
    book = tmp / "book"
    book.mkdir()
    names = args.chapters or chapters()
    for nb in names:
        shutil.copy(BOOK / nb, book / nb)
    shutil.copy(FIXTURES / BASELINE, book / BASELINE)
    notebooks = [BASELINE, *names]
    results = {"cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()}
    with sync_playwright() as pw:
        for pooled in ([True, False] if args.cold_reps > 0 and not args.latency_only
                       else [True]):
            server = serve_book(tmp / f"srv-{pooled}", book=book, pool_size=int(pooled),
                                cull_idle_timeout=600, name=f"bench-{int(pooled)}")
            try:
                key = "ttfw_pooled_s" if pooled else "ttfw_cold_s"
                reps = args.reps if pooled else args.cold_reps
                if not args.latency_only:
                    results[key] = time_to_first_widget(pw, server, notebooks, reps, pooled,
                                                        tmp)
                if pooled:
                    results["latency"] = slider_latency(pw, server, args.moves, tmp)
            finally:
                server.stop()
    results["kernel_update_ms"] = kernel_update_ms(args.moves)
    results["load_avg_end"] = os.getloadavg()
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(results: dict) -> None:
    med = statistics.median
    print(f"CPUs: {results['cpu_count']}, load average at start "
          f"{results['load_avg_start'][0]:.1f}, at end {results['load_avg_end'][0]:.1f}")
    for key, label in (("ttfw_pooled_s", "pre-heated pool (--pool-size 1)"),
                       ("ttfw_cold_s", "cold (--pool-size 0)")):
        if key not in results:
            continue
        times = results[key]
        base = med(times[BASELINE])
        print(f"\ntime to first widget, {label}: median of {len(times[BASELINE])}")
        print(f"  {'notebook':34s} {'median s':>9s} {'ratio':>6s}  (target ratio <= 1.5)")
        for nb, values in times.items():
            print(f"  {nb:34s} {med(values):9.2f} {med(values) / base:6.2f}")
    if "latency" in results:
        lat = results["latency"]
        print(f"\nslider -> chart, chapter 01 quick, {len(lat['first_mutation_ms'])} moves:")
        print("  (from the keydown; target: the chart redrawn, view_drawn_ms, median <= 150)")
        for key in ("comm_sent_ms", "spec_received_ms", "first_mutation_ms", "view_drawn_ms",
                    "redraw_done_ms"):
            values = sorted(lat.get(key) or [float("nan")])
            print(f"  {key:18s} median {med(values):7.1f} ms, min {values[0]:6.1f}, "
                  f"max {values[-1]:7.1f}")
        if lat.get("spec_message_chars"):
            print(f"  chart update message: {med(lat['spec_message_chars']) / 1024:.0f} KiB")
    if "kernel_update_ms" in results:
        values = sorted(results["kernel_update_ms"])
        print(f"  kernel: QuadraticApp slider move median {med(values):.1f} ms "
              f"(min {values[0]:.1f}) in this Python")


if __name__ == "__main__":
    sys.exit(main())
