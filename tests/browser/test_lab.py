"""Each chapter opens in JupyterLab (as ``eoslab lab`` starts it), runs, and its app works there.

JupyterLab serves a copy of ``book/`` in a temporary folder with autosave off, so running
the chapters can never write outputs into the repository's notebooks.  The server's root
is that book folder, so each chapter opens in a fresh workspace at
``/lab/workspaces/<id>/tree/<nb>?reset``; all cells are run through JupyterLab's own
``notebook:run-all-cells`` command.  Each test shuts its chapter's
kernel down at the end, as "Shut Down Kernel" would, so that the kernels of the chapters
already tested do not pile up in memory.
"""

import http.cookiejar
import json
import os
import shutil
import sys
import urllib.request

import pytest

from eoslab.serve import lab_argv

from .conftest import ARTIFACTS, BOOK, Server, chapters, exercise_app, free_port, wait_chart

# user settings: autosave off, every cell rendered (no windowing: the app may sit below the
# fold), no news / update checks (they would ask outside hosts)
SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False},
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(BOOK, root / "book")
    for name, values in SETTINGS.items():
        path = root / "settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port = free_port()
    argv = lab_argv(root / "book", port=port, open_browser=False, allow_root=True, extra=[
        "--IdentityProvider.token=", "--ServerApp.password=",
        f"--LabApp.user_settings_dir={root / 'settings'}",
        f"--LabApp.workspaces_dir={root / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0"])
    env = {**os.environ, "EOSLAB_QUICK": "1", "EOSLAB_STORE": str(root / "store"),
           "JUPYTER_CONFIG_DIR": str(root / "config"), "PYTHONUNBUFFERED": "1"}
    server = Server(argv, env, port, ARTIFACTS / "logs" / f"lab-{port}.log", ready_path="/api")
    server.root = root
    yield server
    server.stop()


def test_lab_argv_is_what_eoslab_lab_runs():
    argv = lab_argv(BOOK, port=8888, open_browser=False)
    assert argv[:3] == [sys.executable, "-m", "jupyterlab"]


def shut_down_kernels(server, path: str) -> int:
    """Shut down the sessions (and kernels) of the notebook at ``path``; returns how many.

    Like the page, the request carries the server's ``_xsrf`` cookie back as a header.
    """
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(server.url + "lab", timeout=60):
        pass
    xsrf = {c.name: c.value for c in jar}["_xsrf"]
    with opener.open(server.url + "api/sessions", timeout=30) as reply:
        sessions = [s for s in json.load(reply) if s["path"] == path]
    for session in sessions:
        request = urllib.request.Request(server.url + f"api/sessions/{session['id']}",
                                         method="DELETE", headers={"X-XSRFToken": xsrf})
        with opener.open(request, timeout=60) as reply:
            assert reply.status == 204, reply.status
    return len(sessions)


@pytest.fixture
def shut_down_after(lab, request):
    """After the test (and its browser: set up before it, torn down after), no kernel runs."""
    yield
    shut_down_kernels(lab, request.node.callspec.params["notebook"])  # root: the book
    with urllib.request.urlopen(lab.url + "api/kernels", timeout=30) as reply:
        assert json.load(reply) == [], "kernels still running after the chapter's shut down"


@pytest.mark.parametrize("notebook", chapters())
def test_chapter_runs_in_jupyterlab(lab, shut_down_after, browser_page, notebook):
    page, log = browser_page
    stem = notebook.removesuffix(".ipynb")
    original = (lab.root / "book" / notebook).read_bytes()
    page.goto(f"{lab.url}lab/workspaces/test-{stem}/tree/{notebook}?reset")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           ".kernel")
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext"
                           ".session.kernel.status === 'idle'")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(".jp-NotebookPanel .eoslab-app, "
                           ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
                           " .ansi-red-fg", state="attached")
    errors = page.locator(".jp-OutputArea-output .ansi-red-fg")
    assert errors.count() == 0, page.inner_text(".jp-NotebookPanel")[-3000:]
    page.locator(".eoslab-app").first.scroll_into_view_if_needed()
    wait_chart(page, ".jp-NotebookPanel")
    exercise_app(page, f"lab-{stem}", root=".jp-NotebookPanel")
    # autosave is off and nothing was saved: the notebook on disk is untouched
    assert (lab.root / "book" / notebook).read_bytes() == original
    assert log.outside() == [], log.outside()
    assert log.bad_failures() == [], log.bad_failures()
