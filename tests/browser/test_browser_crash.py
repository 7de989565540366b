"""A browser test is run once more when its Chromium browser process crashes, and only then.

An inner pytest session (in a subprocess, on this folder's fixtures and hooks) runs three
tests: one whose browser process gets SIGSEGV on its first attempt, one that closes its own
page, one that fails an assertion.  Only the first may be rerun, and it must pass the rerun.
"""

import os
import re
import subprocess
import sys
import textwrap

from .conftest import ROOT

INNER_TESTS = '''
import os
import signal
from pathlib import Path

import psutil

from tests.browser.conftest import RERUN_ON_BROWSER_CRASH

ATTEMPTS = Path(__file__).with_name("attempts.txt")


def browser_process(profile):
    """The browser process (not a renderer, GPU or crashpad child) of ``profile``."""
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info["cmdline"] or []
        if (any(a == f"--user-data-dir={profile}" for a in argv)
                and not any(a.startswith("--type=") for a in argv)
                and "crashpad" not in argv[0]):
            return proc
    raise AssertionError(f"no browser process for {profile}")


@RERUN_ON_BROWSER_CRASH
def test_browser_crashes_on_the_first_attempt(browser_page, tmp_path):
    page, _ = browser_page
    attempt = len(ATTEMPTS.read_text()) + 1 if ATTEMPTS.exists() else 1
    ATTEMPTS.write_text("x" * attempt)
    if attempt == 1:
        os.kill(browser_process(tmp_path / "profile").pid, signal.SIGSEGV)
        page.wait_for_function("() => false", timeout=60_000)
    page.set_content("<p>second browser</p>")
    assert page.inner_text("p") == "second browser"


@RERUN_ON_BROWSER_CRASH
def test_a_page_the_test_closed_is_not_rerun(browser_page):
    page, _ = browser_page
    page.close()
    page.evaluate("1")


@RERUN_ON_BROWSER_CRASH
def test_a_plain_failure_is_not_rerun(browser_page):
    page, _ = browser_page
    assert page.evaluate("1 + 1") == 3
'''


def test_only_a_crashed_browser_process_reruns_a_test(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(
        "from tests.browser.conftest import *  # noqa: F403 (its fixtures and hooks)\n")
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(INNER_TESTS))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "--rerun-show-tracebacks",
         "-p", "no:cacheprovider", "-c", str(tmp_path / "pytest.ini"),
         "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    text = out.stdout + out.stderr
    summary = text.strip().splitlines()[-1]
    assert re.search(r"\b2 failed, 1 passed, 1 rerun\b", summary), text[-5000:]
    assert re.search(r"RERUN .*test_browser_crashes_on_the_first_attempt", text), text[-5000:]
    assert re.search(r"PASSED .*test_browser_crashes_on_the_first_attempt", text), text[-5000:]
    assert "BrowserCrashed: the Chromium browser process of profile" in text, text[-5000:]
    for name in ("test_a_page_the_test_closed_is_not_rerun", "test_a_plain_failure_is_not_rerun"):
        assert re.search(rf"FAILED .*{name}", text), text[-5000:]
        assert not re.search(rf"RERUN .*{name}", text), text[-5000:]
    assert (tmp_path / "attempts.txt").read_text() == "xx"
