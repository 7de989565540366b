"""The book: every chapter runs headless on its quick preset, is stored without outputs,
and its phenomenon holds on the quick preset through the API the chapter uses."""

import re
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

BOOK = Path(__file__).resolve().parents[2] / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
CHAPTER_NAME = r"\d\d_[a-z0-9_]+\.ipynb"
EXTRAS = ("playground.ipynb",)  # the book's notebooks that are not chapters
CHAPTERS = [p for p in NOTEBOOKS
            if re.fullmatch(CHAPTER_NAME, p.name) and p.name != "00_index.ipynb"]
TIMES: dict[str, float] = {}


def _execute(nb, timeout=600):
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(BOOK)}},
                            store_widget_state=True)
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def test_the_book_has_its_index_and_chapters():
    names = [p.name for p in NOTEBOOKS]
    assert "00_index.ipynb" in names
    assert all(re.fullmatch(CHAPTER_NAME, n) or n in EXTRAS for n in names), names
    assert set(EXTRAS) <= set(names)


def test_index_links_the_playground():
    text = "\n".join(c.source for c in nbformat.read(BOOK / "00_index.ipynb", 4).cells)
    assert "](playground.ipynb)" in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a cell has outputs; clear them"
            assert cell.execution_count is None, f"{path.name}: execution counts are stored"
    assert "widgets" not in nb.metadata, f"{path.name}: widget state is stored"
    # without a kernelspec JupyterLab opens a "Select Kernel" dialog instead of the chapter
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: metadata.kernelspec must name the python3 kernel")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_cites_its_paper_and_ends_with_try_this(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0].source
    assert nb.cells[0].cell_type == "markdown" and re.search(r"(19|20)\d\d", first)
    assert "claim" in first.lower()
    assert nb.cells[-1].cell_type == "markdown" and "Try this" in nb.cells[-1].source
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert re.search(r"^(import|from) eoslab", code, re.M)
    assert "def " not in code and "class " not in code


def test_index_lists_every_chapter_and_links_the_built_ones():
    text = "\n".join(c.source for c in nbformat.read(BOOK / "00_index.ipynb", 4).cells)
    built = {p.name[:2]: p.name for p in CHAPTERS}
    for number in (f"{n:02d}" for n in range(1, 20)):
        line = [ln for ln in text.splitlines() if ln.startswith(f"- **{number}**")]
        assert len(line) == 1, f"chapter {number} missing from the index"
        if number in built:
            assert f"]({built[number]})" in line[0] and "coming" not in line[0], (
                f"book/00_index.ipynb must link {built[number]} and drop its *coming*")
        else:
            assert "*coming*" in line[0], f"chapter {number} is not in book/: mark it *coming*"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes_on_the_quick_preset(path, monkeypatch):
    monkeypatch.setenv("EOSLAB_QUICK", "1")
    nb = nbformat.read(path, as_version=4)
    seconds = _execute(nb)
    TIMES[path.stem] = seconds
    print(f"{path.name}: executed in {seconds:.1f} s", file=sys.stderr)
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{path.name}: {out.get('ename')}"
            if out.output_type == "stream" and out.name == "stderr":
                assert "Traceback" not in out.text, out.text
    has_code = any(c.cell_type == "code" for c in nb.cells)
    if has_code:
        widgets = nb.metadata.get("widgets", {}).get(
            "application/vnd.jupyter.widget-state+json", {}).get("state", {})
        statuses = [w["state"].get("value", "") for w in widgets.values()
                    if "eoslab-status" in w["state"].get("_dom_classes", [])]
        assert statuses and all(statuses), f"{path.name}: no status line was sent"
        if path.name.startswith("02_"):  # trained in a thread: its final words reached the client
            assert any("sharpness / edge" in s for s in statuses), statuses


def test_widget_updates_from_a_background_thread_reach_the_front_end(tmp_path, monkeypatch):
    """ipywidgets 8 sends traitlet changes made in another thread: the client sees them."""
    monkeypatch.setenv("EOSLAB_QUICK", "1")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import threading, ipywidgets as w\n"
        "label = w.HTML('start'); label.add_class('eoslab-status')\n"
        "display(label)\n"
        "t = threading.Thread(target=lambda: setattr(label, 'value', 'set from a thread'))\n"
        "t.start(); t.join()\n"
        "import time; time.sleep(0.5)")])
    _execute(nb, timeout=120)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    values = [w["state"].get("value") for w in state.values()
              if "eoslab-status" in w["state"].get("_dom_classes", [])]
    assert values == ["set from a thread"]


# -- the phenomena, on the quick presets -----------------------------------------------------

