"""A served book that strangers cannot exhaust: real ``eoslab serve`` processes, poked over HTTP.

* past the kernel cap (total, and per client address) a page request gets the "server is
  busy" page (HTTP 503, ``Retry-After``) instead of a kernel, and a request cut off before
  its page is sent leaves no kernel behind;
* a stop signal to ``eoslab serve`` stops Voila and every kernel;
* over the kernel websocket, a widget value outside its allowed range is refused, and no
  traceback or file path of the server reaches the client;
* the cookies are ``SameSite``.

The book is tiny (a one-slider notebook, and a toy :class:`~eoslab.ui.app.ChapterApp`), so
a kernel starts in a second or two.  Client addresses are told apart by binding the client
socket to 127.0.0.x.
"""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "one_slider.ipynb"
PAGE = "/voila/render/01_one.ipynb"

TOY_APP = '''\
import altair as alt
from eoslab.ui.app import ChapterApp

def toy(preset, settings, *, emit=None, stop=None):
    return {"status": "finished", "datasets": {"points": [{"x": 0, "y": settings["lr"]}]}}

class ToyApp(ChapterApp):
    CHAPTER, KIND, LIVE = "15", "toy_served", True
    LR_RANGE = (0.01, 3.0, 0.01)
    experiment = staticmethod(toy)

    def layout(self, settings):
        return alt.Chart(alt.Data(name="points")).mark_point().encode(x="x:Q", y="y:Q")

    def describe(self, result):
        return f"computed with lr = {result['datasets']['points'][0]['y']:.3g}"

app = ToyApp("quick", store=False, chart_mode="svg")
app.widget
'''

FAULTY_SLIDER = '''\
import os
import ipywidgets as widgets

def fail(change):
    raise RuntimeError(f"a callback failed in {os.getcwd()}")

faulty = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, description="faulty")
faulty.add_class("faulty-slider")
faulty.observe(fail, names="value")
faulty
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_book(folder: Path) -> Path:
    folder.mkdir()
    (folder / "01_one.ipynb").write_text(FIXTURE.read_text())
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(TOY_APP),
                                               nbformat.v4.new_code_cell(FAULTY_SLIDER)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    nbformat.write(notebook, folder / "02_app.ipynb")
    return folder


class Served:
    """``eoslab serve`` on a tiny book, in a session of its own; ``stop()`` reaps it all."""

    def __init__(self, tmp_path: Path, *flags: str):
        self.port = free_port()
        tmp_path.mkdir()
        self.log_path = tmp_path / "serve.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        book = write_book(tmp_path / "book")
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "EOSLAB_QUICK": "1",  # Voila imports this eoslab
               "EOSLAB_STORE": str(tmp_path / "store"), "PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, "-m", "eoslab.cli", "serve", "--book", str(book),
                "--port", str(self.port), "--pool-size", "0", "--quick", *flags]
        self.process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self._log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self.seen: dict = {}
        deadline = time.monotonic() + 90
        while True:
            assert self.process.poll() is None, self.log()
            try:
                if get(self.port, "/")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "eoslab serve did not answer in 90 s\n" + self.log()
            time.sleep(0.3)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-4000:]

    def family(self) -> list:
        """The processes below ``eoslab serve`` now (all seen so far are kept in ``seen``)."""
        try:
            found = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            found = []
        self.seen.update({p.pid: p for p in found})
        return found

    def kernels(self) -> list:
        return [p for p in self.family() if "ipykernel" in " ".join(_cmdline(p))]

    def wait_kernels(self, count: int, timeout: float = 30) -> list:
        deadline = time.monotonic() + timeout
        while len(kernels := self.kernels()) != count:
            assert time.monotonic() < deadline, (f"{len(kernels)} kernels, not {count}, "
                                                 f"after {timeout} s\n" + self.log())
            time.sleep(0.2)
        return kernels

    def stop(self) -> None:
        self.family()
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for proc in self.seen.values():
            try:
                proc.kill()
            except psutil.Error:
                pass
        self._log.close()


def _cmdline(proc) -> list:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


def get(port: int, path: str, source: str = "127.0.0.1", headers: dict | None = None,
        method: str = "GET") -> tuple:
    """``(status, headers, body)`` of one request from the address ``source``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, reply.headers, reply.read().decode()
    finally:
        conn.close()


def kernel_id(page: str) -> str:
    return re.search(r'"kernelId": "([0-9a-f-]{36})"', page).group(1)


@pytest.fixture
def served(tmp_path):
    servers = []

    def start(*flags):
        servers.append(Served(tmp_path / f"s{len(servers)}", *flags))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_requests_past_the_kernel_cap_get_the_busy_page(served):
    server = served("--max-kernels", "2", "--max-kernels-per-client", "1")
    status, headers, page = get(server.port, PAGE, "127.0.0.1")
    assert status == 200, page[-2000:]
    cookies = headers.get_all("Set-Cookie")
    assert cookies and all("SameSite=Lax" in c for c in cookies), cookies
    server.wait_kernels(1)
    status, headers, busy = get(server.port, PAGE, "127.0.0.1")  # the same address again
    assert status == 503 and headers["Retry-After"] == "60"
    assert "The server is busy, try again in a minute" in busy and "1 of them by your" in busy
    assert get(server.port, PAGE, "127.0.0.2")[0] == 200  # another address
    status, _, busy = get(server.port, PAGE, "127.0.0.3")  # the total is reached
    assert status == 503 and "The server is busy" in busy
    assert len(server.wait_kernels(2)) == 2  # the refused requests started nothing
    # a page that unloads gives its kernel back, as the page's unload hook does
    headers = get(server.port, "/", "127.0.0.1")[1]
    xsrf = re.search(r"_xsrf=([^;]+)", " ".join(headers.get_all("Set-Cookie"))).group(1)
    kid = kernel_id(page)
    status = get(server.port, f"/voila/api/shutdown/{kid}", "127.0.0.1", method="POST",
                 headers={"Cookie": f"_xsrf={xsrf}", "X-XSRFToken": xsrf})[0]
    assert status == 204
    server.wait_kernels(1)
    assert get(server.port, PAGE, "127.0.0.3")[0] == 200
    assert "busy, refused a page to 127.0.0.3 (total cap 2 reached)" in server.log()


def test_a_kernel_taken_from_the_pool_counts_against_the_cap(served):
    server = served("--pool-size", "1", "--preheat", "01", "--max-kernels-per-client", "1")
    deadline = time.monotonic() + 60
    while "Kernel pool of 01_one.ipynb is filled" not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.2)
    status, _, page = get(server.port, PAGE, "127.0.0.1")
    assert status == 200, page[-2000:]
    assert "Using pre-heated kernel" in server.log()
    assert get(server.port, PAGE, "127.0.0.1")[0] == 503
    assert get(server.port, PAGE, "127.0.0.2")[0] == 200


def test_a_request_cut_off_before_its_page_leaves_no_kernel(served):
    server = served("--max-kernels", "1")
    for _ in range(3):  # as in the report: three GETs, each cut off
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(f"GET {PAGE} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            time.sleep(0.5)
        server.wait_kernels(0, timeout=20)
    assert "left before its page was sent" in server.log()
    assert get(server.port, PAGE)[0] == 200  # the cap of 1 was given back each time


def test_sigterm_stops_voila_and_its_kernels(served):
    """The real thing; every stop signal, and a server that leaves kernels behind, are
    tested on a stand-in server below."""
    server = served()
    assert get(server.port, PAGE)[0] == 200
    server.wait_kernels(1)
    family = server.family()
    assert any("voila" in " ".join(_cmdline(p)) for p in family)
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=60) == 0, server.log()
    _, left = psutil.wait_procs(family, timeout=30)
    assert left == [], [(p.pid, _cmdline(p)) for p in left]
    with pytest.raises(OSError):
        get(server.port, "/")


class KernelSocket:
    """A client of one kernel's websocket speaking the JSON protocol (as a page would)."""

    def __init__(self, port: int, kernel: str, cookie: str):
        import websocket

        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/api/kernels/{kernel}/channels?session_id={uuid.uuid4()}",
            header=[f"Cookie: {cookie}"], origin=f"http://127.0.0.1:{port}", timeout=30)
        self.session = uuid.uuid4().hex
        self.received: list = []

    def send(self, msg_type: str, content: dict, metadata: dict | None = None) -> None:
        header = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type, "session": self.session,
                  "username": "visitor", "version": "5.3", "date": "2024-01-01T00:00:00Z"}
        self.ws.send(json.dumps({"header": header, "parent_header": {}, "content": content,
                                 "metadata": metadata or {}, "channel": "shell",
                                 "buffers": []}))

    def collect(self, until, timeout: float = 30) -> list:
        """The messages up to the first that satisfies ``until``, which comes last."""
        import websocket

        start, deadline = len(self.received), time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                break
            self.received.append(raw)
            if until(json.loads(raw)):
                return [json.loads(r) for r in self.received[start:]]
        raise AssertionError("no such message in time; got: "
                             + "\n".join(r[:300] for r in self.received[start:]))

    def update(self, comm: str, state: dict) -> None:
        self.send("comm_msg", {"comm_id": comm, "data": {"method": "update", "state": state,
                                                         "buffer_paths": []}})


def _status(text):
    def done(msg):
        data = msg["content"].get("data", {})
        return (msg["msg_type"] == "comm_msg" and data.get("method") == "update"
                and text in str(data.get("state", {}).get("value", "")))
    return done


def test_widget_messages_are_checked_and_no_traceback_reaches_the_client(served):
    server = served()
    status, headers, page = get(server.port, "/voila/render/02_app.ipynb")
    assert status == 200, page[-3000:]
    assert "Traceback" not in page
    cookie = "; ".join(c.split(";")[0] for c in headers.get_all("Set-Cookie"))
    client = KernelSocket(server.port, kernel_id(page), cookie)
    control = uuid.uuid4().hex
    client.send("comm_open", {"comm_id": control, "target_name": "jupyter.widget.control",
                              "data": {}}, metadata={"version": "1.0.0"})
    client.send("comm_msg", {"comm_id": control, "data": {"method": "request_states"}})
    states = client.collect(lambda m: m["msg_type"] == "comm_msg" and m["content"]["data"].get(
        "method") == "update_states")[-1]["content"]["data"]["states"]

    def comm(css):
        return next(k for k, v in states.items() if css in v["state"].get("_dom_classes", []))

    lr = comm("eoslab-lr-slider")
    first = states[lr]["state"]["value"]
    assert states[comm("eoslab-status")]["state"]["value"] == f"computed with lr = {first:.3g}"
    client.update(lr, {"max": 1e308, "value": 1e300})  # widen the slider, then go far out
    replies = client.collect(_status("refused: step size η = 1e+300 is outside [0.01, 3]"))
    client.ws.send(json.dumps({"header": {"msg_id": uuid.uuid4().hex, "msg_type": "comm_msg",
                                          "session": client.session, "username": "visitor",
                                          "version": "5.3", "date": "2024-01-01T00:00:00Z"},
                               "parent_header": {}, "metadata": {}, "channel": "shell",
                               "buffers": [], "content": {"comm_id": lr, "data": {
                                   "method": "update", "state": {"value": float("nan")},
                                   "buffer_paths": []}}}))
    replies += client.collect(_status("refused: step size η = nan is not a finite number"))
    client.update(lr, {"value": 0.5})
    replies += client.collect(_status("computed with lr = 0.5"))
    values = [m["content"]["data"]["state"]["value"] for m in replies
              if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == lr
              and "value" in m["content"]["data"].get("state", {})]
    assert values[-1] == 0.5 and first in values  # put back to its last good value, then moved
    statuses = [str(m["content"]["data"]["state"]["value"]) for m in replies
                if m["msg_type"] == "comm_msg"
                and "computed with" in str(m["content"]["data"].get("state", {}))]
    assert statuses == ["computed with lr = 0.5"]  # 1e300 and nan were never computed with
    # a callback that raises (its message names a server path), and a control comm of the
    # wrong protocol version, which the kernel logs to stderr with its traceback
    client.update(comm("faulty-slider"), {"value": 0.7})
    replies += client.collect(lambda m: m["msg_type"] == "error")
    client.send("comm_open", {"comm_id": uuid.uuid4().hex,
                              "target_name": "jupyter.widget.control", "data": {}})
    client.send("kernel_info_request", {})
    replies += client.collect(lambda m: m["msg_type"] == "kernel_info_reply")
    error = next(m for m in replies if m["msg_type"] == "error")
    assert error["content"]["traceback"] == [
        "An exception occurred at runtime, which is not shown due to security reasons."]
    everything = "\n".join(client.received)
    assert not re.search(r"/[\w.-]+/[\w./-]+\.py\b", everything)  # no path of a module
    for leak in ("Traceback", "File \"", str(ROOT), sys.prefix, "a callback failed"):
        assert leak not in everything, (leak, everything[max(0, everything.find(leak) - 300):
                                                         everything.find(leak) + 100])
    assert not [m for m in map(json.loads, client.received) if m["msg_type"] == "stream"
                and m["content"].get("name") == "stderr"]
    client.ws.close()


FAKE_SERVER = '''\
import signal, subprocess, sys, time
# a "kernel" in a session of its own, as jupyter_client starts them
kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"],
                          start_new_session=True)
print(kernel.pid, flush=True)
if sys.argv[1] == "stubborn":  # ignores SIGTERM: killed after the grace period
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:  # exits at once, leaving its kernel behind
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
time.sleep(300)
'''


def _alive(proc) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("sig, mode, status", [
    (signal.SIGTERM, "careless", 0), (signal.SIGINT, "careless", 0),
    (signal.SIGHUP, "careless", 0), (signal.SIGTERM, "stubborn", 128 + signal.SIGKILL)],
    ids=["SIGTERM", "SIGINT", "SIGHUP", "stubborn"])
def test_stop_signals_reach_the_server_and_no_kernel_outlives_it(tmp_path, sig, mode, status):
    """run_until_interrupted on a server that leaves its kernel behind, or ignores SIGTERM."""
    script = tmp_path / "server.py"
    script.write_text(FAKE_SERVER)
    runner = subprocess.Popen(
        [sys.executable, "-c", "import sys; from eoslab.serve.common import run_until_interrupted;"
         f"sys.exit(run_until_interrupted([sys.executable, {str(script)!r}, {mode!r}], None, "
         "grace=2, poll=0.2))"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        kernel = psutil.Process(int(runner.stdout.readline()))
        server = psutil.Process(runner.pid).children()[0]
        time.sleep(0.5)  # the runner has noted the kernel
        runner.send_signal(sig)
        assert runner.wait(timeout=30) == status
        gone = time.monotonic() + 15
        while _alive(kernel) or _alive(server):
            assert time.monotonic() < gone, "a process outlived eoslab serve"
            time.sleep(0.1)
    finally:
        for proc in psutil.Process(runner.pid).children(recursive=True) if runner.poll() is None \
                else []:
            proc.kill()
        runner.kill()
        runner.wait()
