"""The README's Python examples run as written."""

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(section: str) -> list[str]:
    """The ```python blocks of the README section titled ``section``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    body = text[start:end if end != -1 else None]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_own_model_example_trains_and_records_rows():
    blocks = python_blocks("Use eoslab on your own model")
    assert len(blocks) == 1
    namespace, out = {"__name__": "readme_example"}, io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md", "exec"), namespace)
    tracker = namespace["tracker"]
    assert [row["step"] for row in tracker.history] == [20, 40, 60, 80, 100]
    last = tracker.history[-1]
    assert {"loss", "sharpness", "precond_sharpness", "threshold", "trace"} <= set(last)
    assert last["threshold"] == pytest.approx(38 / 1e-2)  # Adam, beta1 = 0.9, lr = 0.01
    assert tracker.diverged is None and str(last["step"]) in out.getvalue()
