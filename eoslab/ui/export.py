"""Export a chart and its data: SVG, PNG, CSV, JSON and "copy as code".

:func:`chart_svg` and :func:`chart_png` render a Vega-Lite chart (an Altair chart or its
spec dict, datasets included) in the kernel with vl-convert, which bundles Vega: nothing is
fetched from a CDN.  The text formats are in :mod:`eoslab.core.export_formats`.

:class:`ExportControls` is the row of download links under an app's chart.  Each link is
an ``<a download>`` anchor holding its file as a ``data:`` URL, so a click saves the file in
any browser (Voila, JupyterLab) with no round trip to the kernel.  The files are made only
when :meth:`ExportControls.update` is called (an app calls it once a result is final),
and then in a background thread after a short delay, so that several updates in quick
succession (a live app's slider) make the files once, and ``update`` itself costs next to
nothing on the caller's thread.  The pictures are rendered in a child process
(:func:`render_apart`): vl-convert holds the GIL while it works, which in the kernel would
stall the sliders for as long as a dense PNG takes.

CSS classes: ``eoslab-export`` (the row), ``eoslab-export-svg``, ``eoslab-export-png``,
``eoslab-export-csv``, ``eoslab-export-json`` (the links), ``eoslab-export-code`` (the
code, in a ``<pre>``) and ``eoslab-export-copy`` (its Copy button).

Example:
    >>> import altair as alt
    >>> chart = alt.Chart(alt.Data(values=[{"x": 1, "y": 2}])).mark_point().encode(x="x:Q")
    >>> chart_svg(chart).lstrip().startswith("<svg")
    True
"""

from __future__ import annotations

import base64
import html
import json
import subprocess
import sys
import threading
import time

import ipywidgets as widgets

from eoslab.core.export_formats import (
    chapter_code,
    config_code,
    datasets_csv,
    datasets_json,
    rows_csv,
    safe_stem,
)

__all__ = ["ExportControls", "chapter_code", "chart_png", "chart_spec", "chart_svg",
           "config_code", "datasets_json", "export_files", "offer_result", "render_apart",
           "rows_csv"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chart_spec(chart) -> dict:
    """The Vega-Lite spec of ``chart`` (an Altair chart, or already a spec dict)."""
    if isinstance(chart, dict):
        return chart
    if hasattr(chart, "to_dict"):
        return chart.to_dict()
    raise ValueError(f"chart is a {type(chart).__name__}; use an Altair chart or a spec dict")


def chart_svg(chart) -> str:
    """``chart`` as an SVG document (rendered offline by vl-convert)."""
    import vl_convert as vlc

    return vlc.vegalite_to_svg(chart_spec(chart))


def chart_png(chart, scale: float = 2) -> bytes:
    """``chart`` as PNG bytes at ``scale`` times its CSS size (rendered offline by vl-convert)."""
    import vl_convert as vlc

    if not (isinstance(scale, (int, float)) and 0 < scale <= 8):
        raise ValueError(f"scale={scale!r} is not allowed; use a number in (0, 8]")
    return bytes(vlc.vegalite_to_png(chart_spec(chart), scale=scale))


# vl-convert holds the GIL while it renders (up to seconds for a dense PNG): a widget makes
# its pictures in a child process, so that the kernel keeps answering sliders meanwhile.
_WORKER = ("import base64, json, sys\n"
           "import vl_convert as vlc\n"
           "job = json.load(sys.stdin)\n"
           "svg = vlc.vegalite_to_svg(job['spec'])\n"
           "png = bytes(vlc.vegalite_to_png(job['spec'], scale=job['scale']))\n"
           "json.dump({'svg': svg, 'png': base64.b64encode(png).decode()}, sys.stdout)\n")


def render_apart(chart, scale: float = 2, timeout: float = 600) -> tuple[str, bytes]:
    """``(chart_svg(chart), chart_png(chart, scale))`` made in a child Python process.

    The same pictures as the in-process functions, without holding this process's GIL.
    """
    job = json.dumps({"spec": chart_spec(chart), "scale": scale})
    done = subprocess.run([sys.executable, "-c", _WORKER], input=job, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise RuntimeError(f"the chart could not be rendered: {lines[-1][:300]}")
    out = json.loads(done.stdout)
    return out["svg"], base64.b64decode(out["png"])


def export_files(chart=None, datasets: dict | None = None, code: str | None = None,
                 apart: bool = False) -> dict[str, tuple[str, bytes]]:
    """The files an export offers: suffix -> (MIME type, content).

    ``svg``/``png`` when there is a chart (rendered in a child process when ``apart``),
    ``csv``/``json`` when there are datasets (one CSV with a ``dataset`` column), ``py``
    when there is code.
    """
    return dict(_file_steps(chart, datasets, code, apart))


def _file_steps(chart, datasets, code, apart: bool = False):
    """Yield ``(suffix, (mime, bytes))`` one file at a time (a caller may stop in between)."""
    if chart is not None:
        spec = chart_spec(chart)
        svg, png = render_apart(spec) if apart else (chart_svg(spec), chart_png(spec))
        yield "svg", ("image/svg+xml", svg.encode())
        yield "png", ("image/png", png)
    if datasets is not None:
        yield "csv", ("text/csv", datasets_csv(datasets).encode())
        yield "json", ("application/json", datasets_json(datasets).encode())
    if code is not None:
        yield "py", ("text/x-python", code.encode())


# A click copies the <pre>'s text: the async clipboard where the page may use it, else the
# selection and execCommand (older browsers, non-secure origins).
_COPY_JS = ("var p=this.parentNode.querySelector('pre');var t=p.innerText;var b=this;"
            "function sel(){var r=document.createRange();r.selectNodeContents(p);"
            "var s=window.getSelection();s.removeAllRanges();s.addRange(r);"
            "try{if(document.execCommand('copy'))b.innerText='Copied';}catch(e){}}"
            "if(navigator.clipboard&&window.isSecureContext){navigator.clipboard.writeText(t)"
            ".then(function(){b.innerText='Copied';},sel);}else{sel();}")


def _links_html(stem: str, files: dict[str, tuple[str, bytes]]) -> str:
    parts = []
    for suffix in ("svg", "png", "csv", "json"):
        if suffix not in files:
            continue
        mime, data = files[suffix]
        href = f"data:{mime};base64,{base64.b64encode(data).decode()}"
        parts.append(f'<a download="{html.escape(stem)}.{suffix}" class="eoslab-export-{suffix}" '
                     f'href="{href}" title="{len(data):,} bytes">{suffix.upper()}</a>')
    if not parts:
        return ""
    return "<span>download: " + " · ".join(parts) + "</span>"


def _code_html(code: str) -> str:
    return ('<details class="eoslab-export-code-box"><summary>copy as code</summary>'
            f'<button class="eoslab-export-copy" type="button" onclick="{html.escape(_COPY_JS)}">'
            'Copy</button><pre class="eoslab-export-code" style="user-select:text;line-height:1.3;'
            f'max-height:24em;overflow:auto;margin:4px 0">{html.escape(code)}</pre></details>')


class ExportControls:
    """Download links (SVG, PNG, CSV, JSON) and "copy as code" for one chart and its data.

    Args:
        name: the files' stem, e.g. ``"ch02-default-lr0.3"`` (made safe for file names).
        delay: seconds :meth:`update` waits for a newer update before making the files.

    Attributes:
        widget: the row to place under the chart (CSS class ``eoslab-export``).
        files: suffix -> (MIME type, bytes) of the files offered now.
        seconds: how long making the last files took.
    """

    def __init__(self, name: str, delay: float = 0.3):
        if not (isinstance(delay, (int, float)) and delay >= 0):
            raise ValueError(f"delay={delay!r} is not allowed; use seconds >= 0")
        self.name, self.delay = safe_stem(name), float(delay)
        self.files: dict[str, tuple[str, bytes]] = {}
        self.seconds = 0.0
        self.links = widgets.HTML("")
        self.links.add_class("eoslab-export-links")
        self.code = widgets.HTML("")
        self.widget = widgets.VBox([self.links, self.code])
        self.widget.add_class("eoslab-export")
        self._lock = threading.Lock()
        self._token = 0
        self._timer: threading.Timer | None = None
        self._done = threading.Event()
        self._done.set()
        self.error: BaseException | None = None

    def update(self, chart=None, datasets: dict | None = None, code: str | None = None,
               name: str | None = None) -> None:
        """Offer the files of ``chart`` (with its datasets), ``datasets`` and ``code``.

        Returns at once: the files are made in a background thread after ``delay`` seconds
        unless a newer update comes first.  Without a chart only the data links are shown.
        """
        if name is not None:
            self.name = safe_stem(name)
        if chart is not None and not isinstance(chart, dict):
            chart = chart_spec(chart)
        with self._lock:
            self._token += 1
            token = self._token
            if self._timer is not None:
                self._timer.cancel()
            self._done.clear()
            self._timer = threading.Timer(self.delay, self._make,
                                          args=(token, self.name, chart, datasets, code))
            self._timer.daemon = True
            self._timer.start()

    def clear(self) -> None:
        """Offer nothing (e.g. while no result is shown)."""
        with self._lock:
            self._token += 1
            if self._timer is not None:
                self._timer.cancel()
            self.files = {}
            self.links.value = self.code.value = ""
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the files of the last update are offered (``False`` on timeout)."""
        return self._done.wait(timeout)

    def _make(self, token: int, stem: str, chart, datasets, code) -> None:
        start, files = time.perf_counter(), {}
        try:
            for suffix, content in _file_steps(chart, datasets, code, apart=True):
                if token != self._token:  # a newer update came: its files are wanted
                    return
                files[suffix] = content
        except Exception as err:  # noqa: BLE001 - shown in the row, never out of the thread
            with self._lock:
                if token == self._token:
                    self.error, self.files = err, {}
                    self.links.value = (f"<i>export failed: {html.escape(type(err).__name__)}: "
                                        f"{html.escape(str(err)[:200])}</i>")
                    self._done.set()
            return
        links = _links_html(stem, files)
        code_value = _code_html(code) if code is not None else ""
        with self._lock:
            if token != self._token:  # a newer update or a clear came first
                return
            self.files, self.error = files, None
            self.seconds = time.perf_counter() - start
            self.links.value = links
            self.code.value = code_value
            self._done.set()


def offer_result(app, result: dict | None) -> None:
    """Offer a chapter app's final (finished, diverged or stored) result for export.

    The chart is the app's current spec with its datasets (no Altair work), the code
    :func:`chapter_code` of the app's chapter, preset and settings; a stopped or missing
    result offers nothing.
    """
    if result is None or result.get("status") not in ("finished", "diverged"):
        app.exports.clear()
        return
    settings = app.settings()
    parts = [f"ch{app.CHAPTER}", app.preset.name,
             *(f"{k}{v}" for k, v in settings.items() if not isinstance(v, (dict, list)))]
    app.exports.update(chart=app.chart.spec, datasets=result.get("datasets", {}),
                       code=chapter_code(app.CHAPTER, app.preset.name, settings),
                       name="-".join(parts))
