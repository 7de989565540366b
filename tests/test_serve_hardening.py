"""A served book that strangers cannot exhaust: real ``eoslab serve`` processes, poked over HTTP.

* a stop signal to ``eoslab serve`` stops Voila and every kernel.

The book is tiny (a one-slider notebook), so a kernel starts in a second or two.
"""

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "one_slider.ipynb"
PAGE = "/voila/render/01_one.ipynb"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_book(folder: Path) -> Path:
    folder.mkdir()
    (folder / "01_one.ipynb").write_text(FIXTURE.read_text())
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


@pytest.fixture
def served(tmp_path):
    servers = []

    def start(*flags):
        servers.append(Served(tmp_path / f"s{len(servers)}", *flags))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


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
