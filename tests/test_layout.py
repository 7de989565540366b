"""The layout shows the architecture: layers as subpackages, a package per chapter, small parts."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "eoslab"
LAYERS = {"core", "curvature", "geometry", "optimizers", "speed", "ui", "chapters"}
ENTRY_POINTS = {"cli", "serve"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_top_level_holds_only_the_entry_points_and_the_layers():
    files = {p.name for p in PACKAGE.glob("*.py")}
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert files == {"__init__.py"}
    assert folders == LAYERS | ENTRY_POINTS


def test_every_chapter_is_one_package_with_meta_experiment_and_app():
    chapters = sorted(p for p in (PACKAGE / "chapters").iterdir() if p.name.startswith("ch"))
    assert [p.name[:4] for p in chapters] == [f"ch{n:02d}" for n in range(1, 20)]
    for chapter in chapters:
        present = {p.name for p in chapter.glob("*.py")}
        assert {"__init__.py", "meta.py", "experiment.py", "app.py"} <= present, chapter.name
        notebook = ROOT / "book" / f"{chapter.name[2:]}.ipynb"
        assert notebook.exists(), f"{chapter.name} has no notebook {notebook.name}"


def test_experiments_import_no_widgets():
    for experiment in (PACKAGE / "chapters").glob("ch*/experiment.py"):
        tree = ast.parse(experiment.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        # chart builders (pure functions over Altair) may shape the datasets; widgets may not
        widgets = {m for m in names if m.startswith(("ipywidgets", "anywidget"))
                   or m in ("eoslab.ui", "eoslab.ui.app", "eoslab.ui.base", "eoslab.ui.vega_view")}
        assert not widgets, f"{experiment}: {widgets}"


def test_model_code_uses_no_speed_layer():
    source = (PACKAGE / "core" / "models.py").read_text()
    tree = ast.parse(source)
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.startswith("eoslab.speed")} and "nn.Tanh" in source


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_small(path):
    source = path.read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path.name}: split it by concept"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {long}"
