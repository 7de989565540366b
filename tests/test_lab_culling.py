"""A real Jupyter server shuts down a kernel no page is connected to, once it is idle.

Both ways eoslab configures it: the flags of ``eoslab lab`` (:func:`eoslab.serve.lab_argv`)
and the configuration file Binder's postBuild writes
(:func:`eoslab.serve.write_lab_server_config`).  Jupyter Server's own default never culls,
so a kernel that goes away proves the setting was read.  The ``eoslab lab`` server also
shows the book folder and nothing above it, and has no terminals.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from eoslab import serve

TOKEN = "eoslab-test"
IDLE_S = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api(port: int, path: str, method: str = "GET", body: dict | None = None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.load(reply)


def server_argv(how: str, tmp_path, port: int) -> list:
    common = [f"--ServerApp.token={TOKEN}", "--ServerApp.port_retries=0"]
    if how == "eoslab lab flags":
        book = tmp_path / "book"
        book.mkdir()
        (book / "01_a.ipynb").write_text(json.dumps({"cells": [], "metadata": {},
                                                     "nbformat": 4, "nbformat_minor": 5}))
        (tmp_path / "private.txt").write_text("outside the book")
        return serve.lab_argv(book, port=port, open_browser=False, allow_root=True,
                              cull_idle_timeout=IDLE_S, cull_interval=1, extra=common)
    serve.write_lab_server_config(tmp_path / "config", cull_idle_timeout=IDLE_S, cull_interval=1)
    return [sys.executable, "-m", "jupyter_server", f"--port={port}", "--no-browser",
            "--allow-root", f"--ServerApp.root_dir={tmp_path}", *common]


@pytest.mark.parametrize("how", ["eoslab lab flags", "Binder's config file"])
def test_an_idle_kernel_without_a_page_is_shut_down(how, tmp_path):
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_NO_CONFIG": ""}
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(server_argv(how, tmp_path, port), env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                api(port, "status")
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not answer in 120 s"
                time.sleep(0.5)
        if how == "eoslab lab flags":  # rooted at the book; terminals off
            assert [c["path"] for c in api(port, "contents")["content"]] == ["01_a.ipynb"]
            with pytest.raises(urllib.error.HTTPError) as info:
                api(port, "terminals", "POST")
            assert info.value.code == 404
        kernel = api(port, "kernels", "POST", {"name": "python3"})
        assert [k["id"] for k in api(port, "kernels")] == [kernel["id"]]
        started = time.monotonic()
        while api(port, "kernels"):
            assert time.monotonic() - started < 90, "the idle kernel was not culled in 90 s"
            time.sleep(0.5)
        culled_after = time.monotonic() - started
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()
    print(f"{how}: kernel culled {culled_after:.1f} s after it started (idle limit {IDLE_S} s)")
    assert culled_after >= IDLE_S - 0.5
    assert "Culling kernel" in (tmp_path / "server.log").read_text()
