"""Every chapter page looks right and tells the truth, at three widths and three settings.

For each chapter, served by ``eoslab serve --quick``, one page is opened at 1400 px and
driven through: the quick preset as loaded; the step-size slider (``eoslab-lr-slider``,
where the app has one) at its minimum and at its maximum (keyboard Home / End on its
handle); the page resized to 1024, 1400 and 1920 px (one screenshot each, under
``artifacts/screenshots/pages-<chapter>-<width>.png``); the default preset once, watched
while it trains for :data:`DEFAULT_WATCH_S` seconds and then stopped (its full run takes
minutes in most chapters; the same checks but the status's apply while it trains, and its
status must then read stopped or a finished state).  After every quick run has ended
(:func:`finish_run`) the page is checked for:

* overflow: no element of ``.eoslab-app`` reaches past the app's box, the app not past
  the page, and no element hides content wider than itself (``overflow: hidden``);
* no console errors and no Vega warnings (``WARN`` lines such as "Infinite extent");
* no placeholder text left once the run ended ("press Run", "wait for the background
  run", "training ...") and no chart left waiting for data;
* no two tick labels of an axis overlapping;
* legend titles in the chapter's vocabulary: every word of three letters or more of a
  legend title occurs in the chapter's prose (its markdown cells);
* readable chart text: no legend title, legend label, axis title or chart title with a
  raw field name (snake_case, e.g. ``test_loss``) or a Greek letter spelled out
  (``eta``, ``theta``, ``lambda``: the prose writes η, θ, λ);
* a status line consistent with the run: its machine-readable state
  (``eoslab-state-*``, set from the result by :class:`~eoslab.ui.app.ChapterApp`) is a
  finished one, says ``diverged`` exactly when the sentence reports a divergence, and the
  sentence prints no overflowed number (``1e+308``, ``inf``).

Every problem of a chapter is collected (and saved to ``artifacts/pages/<chapter>.json``)
before the test fails, so one run lists them all.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from eoslab.serve import chapter_url

from .conftest import (
    ARTIFACTS,
    busy_status,
    capture,
    chapters,
    finish_run,
    has_run_button,
    open_app,
    status_text,
)

LR = "eoslab-lr-slider"
WIDTHS = (1024, 1400, 1920)
PLACEHOLDERS = ("press run", "wait for the background run", "stopping ...")
# chart text: a raw field name, or a Greek letter spelled out where the prose uses a symbol
RAW_NAME = re.compile(r"\b[a-z]+_[a-z0-9_]+\b")
SPELLED = re.compile(r"\b(eta|theta|lambda)(_?\w*)\b", re.IGNORECASE)
OVERFLOWED = re.compile(r"1e\+30\d|\binf\b|\bnan\b|1\.797", re.IGNORECASE)
# Vega's logger writes "WARN ..."; the chart widget its own "eoslab VegaView ..." (the page's
# other warnings are the Voila template's module-federation notes, not the book's)
VEGA_WARNINGS = ("WARN", "eoslab VegaView")
DEFAULT_WATCH_S = 40  # how long the default preset trains before the test stops it
FINISHED_STATES = {"converged", "oscillating", "chaotic", "not-training", "diverged",
                   "finished", "training", "stopped"}

OVERFLOW_JS = """() => {
    const app = document.querySelector('.eoslab-app');
    if (!app) return ['no .eoslab-app'];
    const box = app.getBoundingClientRect(), page = document.documentElement.clientWidth;
    const name = (e) => e.tagName.toLowerCase() + (e.className && e.className.baseVal === undefined
        ? '.' + String(e.className).trim().split(/\\s+/).slice(0, 3).join('.') : '');
    const out = [];
    if (box.right > page + 1) out.push(`.eoslab-app ends at ${box.right|0} px > page ${page}`);
    for (const e of app.querySelectorAll('*')) {
        if (e.closest('svg') && e.tagName.toLowerCase() !== 'svg') continue;
        const r = e.getBoundingClientRect(), style = getComputedStyle(e);
        if (r.width < 4 || style.visibility === 'hidden' || style.display === 'none') continue;
        if (e.closest('details:not([open]) > :not(summary)')) continue;
        if (r.right > box.right + 1 || r.left < box.left - 1)
            out.push(`${name(e)} spans ${r.left|0}..${r.right|0} px, `
                     + `app ${box.left|0}..${box.right|0}`);
        else if (/hidden|clip|auto|scroll/.test(style.overflowX) && e.tagName !== 'INPUT'
                 && e.scrollWidth > e.clientWidth + 2)
            out.push(`${name(e)} hides content ${e.scrollWidth} px wide in ${e.clientWidth} px`);
        if (out.length > 6) break;
    }
    return out;
}"""

TEXT_JS = """() => {
    const pick = (role) => [...document.querySelectorAll(
        `.eoslab-chart .role-${role} text`)].map(t => t.textContent.trim()).filter(Boolean);
    return {legend: pick('legend-title'), label: pick('legend-label'),
            axis: pick('axis-title'), title: pick('title-text')};
}"""


# tick labels of one axis closer than 2 px, which read as one ("0.010.02", "1e-81e-7")
COLLIDING_JS = r"""() => {
    const out = [];
    for (const axis of document.querySelectorAll('.eoslab-chart .role-axis-label')) {
        // a rotated label's box is not its outline: only labels drawn level are compared
        const level = (t) => !/rotate\((?!0\))/.test(t.getAttribute('transform') || '');
        const boxes = [...axis.querySelectorAll('text')].filter(t => t.textContent.trim()
            && level(t) && getComputedStyle(t).opacity !== '0'
            && t.getAttribute('opacity') !== '0')
            .map(t => [t.textContent.trim(), t.getBoundingClientRect()]);
        for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
            const [a, r] = boxes[i], [b, q] = boxes[j];
            const dx = Math.min(r.right, q.right) - Math.max(r.left, q.left);
            const dy = Math.min(r.bottom, q.bottom) - Math.max(r.top, q.top);
            if (dx > -2 && dy > 1) out.push(`${a} / ${b}`);  // under 2 px apart
        }
    }
    return [...new Set(out)].slice(0, 5);
}"""


class Watch:
    """Console errors and warnings of one page, from a mark on."""

    def __init__(self, page):
        self.errors, self.warnings = [], []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(message.text)
        elif message.type == "warning" and message.text.startswith(VEGA_WARNINGS):
            self.warnings.append(message.text)


def chart_text_problems(texts: dict) -> list:
    """Chart text that shows a raw field name or a spelled-out Greek letter."""
    problems = []
    for kind, items in texts.items():
        for text in dict.fromkeys(items):
            if kind != "label" and RAW_NAME.search(text):
                problems.append(f"{kind} {text!r} is a raw field name")
            elif kind == "label" and re.fullmatch(r"[a-z]+_[a-z0-9_]+", text):
                problems.append(f"legend label {text!r} is a raw field name")
            if SPELLED.search(text):
                problems.append(f"{kind} {text!r} spells out a Greek letter")
    return problems


# the chapter's vocabulary: the words of its prose (the notebook's markdown cells)
PROSE_JS = """() => [...document.querySelectorAll('.jp-RenderedMarkdown, .jp-MarkdownOutput')]
    .map(e => e.innerText).join(' ')"""
WORD = re.compile(r"[^\W\d_]{3,}")
ENDINGS = ("s", "es", "ed", "d", "ing")


def forms(word: str) -> set:
    """``word`` and what it may be without a plural or verb ending ("slices": "slice")."""
    return {word} | {word[:-len(e)] for e in ENDINGS if word.endswith(e) and len(word) > len(e) + 2}


def vocabulary_problems(legend_titles: list, prose: str) -> list:
    """Legend titles with a word (three letters or more) the chapter's prose never uses.

    >>> vocabulary_problems(["GD run", "loss on", "step size", "snapshots", "slice from"],
    ...                     "The GD runs: its loss on ... a snapshot; slices from")
    ["legend title 'step size' uses words the chapter never does: step, size"]
    """
    known = set().union(*map(forms, WORD.findall(prose.lower())))
    problems = []
    for title in dict.fromkeys(legend_titles):
        unknown = [w for w in WORD.findall(title.lower()) if not forms(w) & known]
        if unknown:
            problems.append(f"legend title {title!r} uses words the chapter never does: "
                            + ", ".join(unknown))
    return problems


def status_problems(page) -> list:
    """The status line against its machine-readable state (see the module docs)."""
    status = page.locator(".eoslab-status").first
    text = status.inner_text().strip()
    classes = (status.get_attribute("class") or "").split()
    states = [c.removeprefix("eoslab-state-") for c in classes if c.startswith("eoslab-state-")]
    if len(states) != 1:
        return [f"status carries states {states} (one expected): {text[:120]!r}"]
    state, problems = states[0], []
    # "training" after the run ended: the last loss was still going down (a finished state)
    if state not in FINISHED_STATES - {"stopped"}:
        problems.append(f"status state {state!r} once the run ended: {text[:120]!r}")
    says_diverged = bool(re.match(r"\W*([\w-]+ ){0,3}diverged\b", text, re.IGNORECASE))
    if (state == "diverged") != says_diverged and not (state == "diverged"
                                                      and "diverg" in text.lower()):
        problems.append(f"status state {state!r} but the line reads {text[:160]!r}")
    if OVERFLOWED.search(text):
        problems.append(f"status prints an overflowed number: {text[:160]!r}")
    return problems


def check(page, watch: Watch, where: str) -> list:
    """Every problem of the page now, each prefixed with ``where``."""
    problems = list(page.evaluate(OVERFLOW_JS))
    app_text = page.inner_text(".eoslab-app").lower()
    problems += [f"placeholder {p!r} left on the page" for p in PLACEHOLDERS if p in app_text]
    if busy_status(page.locator(".eoslab-status").first.inner_text()):
        problems.append("placeholder 'training (...' left in the status line")
    body = page.inner_text("body")
    if "wait for the background run" in body:
        problems.append("placeholder 'wait for the background run' left in the page")
    if page.locator(".eoslab-chart [data-waiting]").count():
        problems.append("a chart is still waiting for data")
    texts = page.evaluate(TEXT_JS)
    problems += chart_text_problems(texts)
    problems += vocabulary_problems(texts["legend"], page.evaluate(PROSE_JS))
    problems += [f"axis labels overlap: {pair}" for pair in page.evaluate(COLLIDING_JS)]
    problems += status_problems(page)
    problems += [f"console error: {e[:200]}" for e in dict.fromkeys(watch.errors)]
    problems += [f"console warning: {w[:200]}" for w in dict.fromkeys(watch.warnings)]
    watch.errors.clear()
    watch.warnings.clear()
    return [f"{where}: {p}" for p in problems]


def move_lr(page, key: str) -> bool:
    """Press ``key`` (Home / End) on the step-size slider; whether its value changed.

    The value is read from the handle's ``aria-valuenow`` and from the readout: noUiSlider
    rounds the former to two decimals, so a move among small step sizes shows only in the
    latter.
    """
    handle = page.locator(f".{LR} .noUi-handle").first
    readout = page.locator(f".{LR} .widget-readout").first

    def value():
        return handle.get_attribute("aria-valuenow"), readout.inner_text()

    before = value()
    handle.focus()
    handle.press(key)
    deadline = time.monotonic() + 10
    while value() == before and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    return value() != before


def wait_for_change(page, before: str, seconds: float = 10) -> None:
    """Wait until the status line leaves ``before`` (the new run started or its result
    showed), so that :func:`settle` does not take the last result for the new one."""
    deadline = time.monotonic() + seconds
    while status_text(page) == before and time.monotonic() < deadline:
        page.wait_for_timeout(200)


def settle(page) -> str:
    text = finish_run(page, timeout_s=420)
    page.wait_for_timeout(1500)  # the last throttled chart update and its relayout
    return text


def default_preset_problems(page, watch: Watch, seconds: float = DEFAULT_WATCH_S) -> list:
    """The default preset, watched live for ``seconds`` (a minute or more of training on
    this machine in most chapters), then stopped: the page while it trains, and the status
    once it stopped or ended."""
    stop = page.locator(".eoslab-stop").first
    if has_run_button(page) and stop.is_disabled() and "press run" in status_text(page).lower():
        page.locator(".eoslab-run").first.click()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and has_run_button(page) and not stop.is_disabled():
        page.wait_for_timeout(500)
    page.wait_for_timeout(1500)  # the last throttled chart update
    where = "default preset"
    problems = [p for p in check(page, watch, where) if ": status" not in p
                and "placeholder 'training (" not in p and "still waiting" not in p]
    if has_run_button(page) and not stop.is_disabled():
        stop.click()
        end = time.monotonic() + 60
        while not stop.is_disabled() and time.monotonic() < end:
            page.wait_for_timeout(250)
        page.wait_for_timeout(800)
        where = "default preset, stopped"
    status = page.locator(".eoslab-status").first
    states = [c for c in (status.get_attribute("class") or "").split()
              if c.startswith("eoslab-state-")]
    if [c.removeprefix("eoslab-state-") for c in states] not in (
            [[s] for s in FINISHED_STATES]):
        problems.append(f"{where}: status carries {states}: {status.inner_text()[:120]!r}")
    return problems


@pytest.mark.parametrize("notebook", chapters())
def test_chapter_page(voila, browser_page, notebook):
    page, _ = browser_page
    stem = notebook.removesuffix(".ipynb")
    watch = Watch(page)
    page.set_viewport_size({"width": 1400, "height": 1000})
    open_app(page, chapter_url(voila.url, notebook), server=voila)
    started = time.monotonic()
    problems = []
    settle(page)
    problems += check(page, watch, "quick, as loaded")

    if page.locator(f".{LR}").count():
        for key, where in (("Home", "quick, step size at the slider's minimum"),
                           ("End", "quick, step size at the slider's maximum")):
            before = status_text(page)
            if not move_lr(page, key):
                problems.append(f"{where}: the slider did not move on {key}")
                continue
            wait_for_change(page, before)
            settle(page)
            problems += check(page, watch, where)

    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(1200)  # the charts' relayout (debounced) and redraw
        capture(page, ARTIFACTS / "screenshots" / f"pages-{stem}-{width}.png")
        problems += [p for p in check(page, watch, f"quick, {width} px")
                     if "status" not in p.split(": ", 1)[1][:6]]

    page.set_viewport_size({"width": 1400, "height": 1000})
    page.select_option(".eoslab-preset select", index=1)  # quick, default, paper
    page.wait_for_timeout(1000)
    problems += default_preset_problems(page, watch)

    seen: dict = {}  # one line a problem, naming every phase it was seen in
    for line in problems:
        where, what = line.split(": ", 1) if ": " in line else ("", line)
        seen.setdefault(what, []).append(where.split(" (")[0])
    problems = [f"{what}  [{'; '.join(dict.fromkeys(wheres))}]" for what, wheres in seen.items()]
    report = ARTIFACTS / "pages" / f"{stem}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps({"chapter": stem, "seconds": time.monotonic() - started,
                                  "problems": problems}, indent=1, ensure_ascii=False))
    assert not problems, f"{stem}: {len(problems)} problems:\n" + "\n".join(problems)
