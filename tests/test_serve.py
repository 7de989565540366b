"""The Voila and JupyterLab command lines built by eoslab.serve, and the CLI around them."""

import asyncio
import json
import os
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

from eoslab import serve
from eoslab.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _flags(argv):
    """``--name=value`` arguments as a dict (value ``None`` for bare flags)."""
    out = {}
    for arg in argv:
        if arg.startswith("--"):
            name, _, value = arg[2:].partition("=")
            out[name] = value if _ else None
    return out


def _book(tmp_path, names=("00_index.ipynb", "01_a.ipynb")):
    book = tmp_path / "book"
    book.mkdir()
    for name in names:
        (book / name).write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                             "nbformat_minor": 5}))
    return book


def test_voila_argv_has_the_public_deployment_settings(tmp_path):
    book = _book(tmp_path)
    argv = serve.voila_argv(book, port=9123, host="0.0.0.0", pool_size=2,
                            cull_idle_timeout=120, cull_interval=7.5, cell_timeout=42)
    assert argv[:4] == [sys.executable, "-m", "voila", str(book)]
    flags = _flags(argv)
    assert flags["port"] == "9123" and flags["Voila.ip"] == "0.0.0.0"
    assert flags["preheat_kernel"] == "True" and flags["pool_size"] == "2"
    assert flags["MappingKernelManager.cull_idle_timeout"] == "120"
    assert flags["MappingKernelManager.cull_interval"] == "7.5"
    assert flags["MappingKernelManager.cull_connected"] == "True"
    assert flags["VoilaExecutor.timeout"] == "42"
    assert flags["strip_sources"] == "True" and flags["show_tracebacks"] == "False"
    assert flags["MappingKernelManager.allow_tracebacks"] == "False"
    assert "no-browser" in flags


def test_voila_argv_caps_kernels_hides_tracebacks_and_sets_samesite(tmp_path):
    flags = _flags(serve.voila_argv("book", host="0.0.0.0", max_kernels=7))
    assert flags["VoilaConfiguration.multi_kernel_manager_class"] == (
        "eoslab.serve.guard.CappedKernelManager")
    assert flags["CappedKernelManager.max_kernels"] == "7"
    assert flags["CappedKernelManager.max_kernels_per_client"] == "3"  # a public address
    assert flags["Voila.kernel_websocket_connection_class"] == (
        "eoslab.serve.guard.QuietKernelConnection")
    assert json.loads(flags["Voila.tornado_settings"]) == {
        "xsrf_cookie_kwargs": {"samesite": "Lax"}}
    assert flags["IdentityProvider.cookie_options"] == "samesite=Lax"
    local = _flags(serve.voila_argv("book", max_kernels_per_client=2))
    assert local["CappedKernelManager.max_kernels_per_client"] == "2"
    assert int(local["CappedKernelManager.max_kernels"]) >= 1  # half the available memory
    assert _flags(serve.voila_argv("book"))["CappedKernelManager.max_kernels_per_client"] == "0"
    assert serve.default_max_kernels(available=7 * serve.KERNEL_BYTES) == 3


def test_voila_argv_switches(tmp_path):
    flags = _flags(serve.voila_argv("b", pool_size=0, open_browser=True, cull_connected=False,
                                    strip_sources=False, show_tracebacks=True,
                                    extra=["--theme=dark"]))
    assert flags["preheat_kernel"] == "False" and "pool_size" not in flags
    assert "no-browser" not in flags
    assert flags["MappingKernelManager.cull_connected"] == "False"
    assert flags["strip_sources"] == "False" and flags["show_tracebacks"] == "True"
    assert flags["MappingKernelManager.allow_tracebacks"] == "True"
    assert flags["theme"] == "dark"


@pytest.mark.parametrize("kwargs, word", [
    ({"port": 0}, "port=0"), ({"port": "80"}, "port='80'"), ({"port": True}, "port=True"),
    ({"host": ""}, "host=''"), ({"host": "a b"}, "host='a b'"),
    ({"pool_size": -1}, "pool_size=-1"), ({"pool_size": 1.5}, "pool_size=1.5"),
    ({"cull_idle_timeout": -5}, "cull_idle_timeout=-5"),
    ({"cull_interval": 0}, "cull_interval=0"),
    ({"cell_timeout": float("nan")}, "cell_timeout=nan"),
    ({"cell_timeout": float("inf")}, "cell_timeout=inf"),
    ({"port_retries": -1}, "port_retries=-1"),
    ({"max_kernels": -1}, "max_kernels=-1"), ({"max_kernels": 2.5}, "max_kernels=2.5"),
    ({"max_kernels_per_client": True}, "max_kernels_per_client=True"),
])
def test_voila_argv_rejects_bad_values(kwargs, word):
    with pytest.raises(ValueError, match="not allowed") as info:
        serve.voila_argv("book", **kwargs)
    assert word in str(info.value)


def test_lab_argv_roots_at_the_book_without_terminals(tmp_path):
    book = _book(tmp_path)
    argv = serve.lab_argv(book, port=9000, open_browser=False, allow_root=False)
    assert argv[:3] == [sys.executable, "-m", "jupyterlab"]
    flags = _flags(argv)
    assert flags["ServerApp.root_dir"] == str(book)
    assert flags["LabApp.default_url"] == "/lab/tree/00_index.ipynb"
    assert flags["ServerApp.terminals_enabled"] == "False"
    assert _flags(serve.lab_argv(book, terminals=True))["ServerApp.terminals_enabled"] == "True"
    assert "allow-root" not in flags and "no-browser" in flags
    assert "allow-root" in _flags(serve.lab_argv(book, allow_root=True))
    with pytest.raises(ValueError, match="port=123456"):
        serve.lab_argv(book, port=123456)


def test_kernel_env_passes_quick_and_store_through():
    env = serve.kernel_env({"EOSLAB_QUICK": "1", "PATH": "/bin", "JUPYTER_PATH": "/x"})
    assert env["EOSLAB_QUICK"] == "1" and env["PATH"] == "/bin" and "EOSLAB_STORE" not in env
    assert env["JUPYTER_PATH"].split(os.pathsep) == [str(serve.TEMPLATE_ROOT), "/x"]
    assert serve.kernel_env(env)["JUPYTER_PATH"] == env["JUPYTER_PATH"]
    env = serve.kernel_env({"PATH": "/bin"}, quick=True, store="/tmp/s")
    assert env["EOSLAB_QUICK"] == "1" and env["EOSLAB_STORE"] == "/tmp/s"


def test_find_book(tmp_path, monkeypatch):
    book = _book(tmp_path)
    assert serve.find_book(book) == book.resolve()
    monkeypatch.chdir(tmp_path)
    assert serve.find_book() == book.resolve()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty.*not allowed"):
        serve.find_book(empty)


def test_cli_dry_run_prints_the_commands(tmp_path, capsys):
    book = _book(tmp_path)
    assert main(["serve", "--book", str(book), "--port", "9001", "--pool-size", "0",
                 "--cull-idle-timeout", "30", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert " -m voila " in out and "--port=9001" in out and "--preheat_kernel=False" in out
    assert "cull_idle_timeout=30" in out
    assert "--CappedKernelManager.max_kernels=" in out
    assert main(["serve", "--book", str(book), "--max-kernels", "4", "--max-kernels-per-client",
                 "2", "--host", "0.0.0.0", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--CappedKernelManager.max_kernels=4 " in out
    assert "--CappedKernelManager.max_kernels_per_client=2 " in out
    assert main(["serve", "--book", str(book), "--host", "0.0.0.0", "--dry-run"]) == 0
    assert "--CappedKernelManager.max_kernels_per_client=3 " in capsys.readouterr().out
    assert main(["lab", "--book", str(book), "--no-browser", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert " -m jupyterlab " in out and "--no-browser" in out
    assert f"--ServerApp.root_dir={book}" in out and "terminals_enabled=False" in out
    assert main(["lab", "--book", str(book), "--terminals", "--dry-run"]) == 0
    assert "terminals_enabled=True" in capsys.readouterr().out


def test_cli_bad_flags_give_clear_errors(tmp_path, capsys):
    book = _book(tmp_path)
    assert main(["serve", "--book", str(book), "--port", "0", "--dry-run"]) == 2
    assert "port=0 is not allowed" in capsys.readouterr().err
    assert main(["serve", "--book", str(tmp_path / "nope"), "--dry-run"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["serve", "--book", str(book), "--max-kernels", "-3", "--dry-run"]) == 2
    assert "max_kernels=-3 is not allowed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["serve", "--pool-size", "many"])
    assert info.value.code == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_generated_traitlets_exist():
    """Every ``--Class.trait`` we pass names a configurable trait (a rename would fail here)."""
    from jupyter_server.auth.identity import IdentityProvider
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager
    from voila.app import Voila
    from voila.configuration import VoilaConfiguration
    from voila.execute import VoilaExecutor

    from eoslab.serve.guard import CappedKernelManager, QuietKernelConnection

    classes = {"Voila": Voila, "VoilaConfiguration": VoilaConfiguration,
               "VoilaExecutor": VoilaExecutor, "MappingKernelManager": MappingKernelManager,
               "CappedKernelManager": CappedKernelManager, "IdentityProvider": IdentityProvider}
    aliases = set(Voila.aliases) | {k for k in Voila.flags}
    flags = _flags(serve.voila_argv("book", pool_size=1))
    from jupyter_client.multikernelmanager import MultiKernelManager
    from jupyter_server.services.kernels.connection.base import BaseKernelWebsocketConnection

    assert issubclass(CappedKernelManager, MultiKernelManager)  # what Voila's traits accept
    assert issubclass(QuietKernelConnection, BaseKernelWebsocketConnection)
    for name in flags:
        if "." in name:
            cls, trait = name.split(".")
            assert trait in classes[cls].class_traits(config=True), name
        else:
            assert name in aliases, name


def test_eoslab_template_drops_exactly_the_cdn_links_of_voilas_lab_template():
    """The ``eoslab`` page template is found through JUPYTER_PATH, and the URLs it blanks
    are the ones Voila's ``lab`` template really links (an updated Voila would fail here)."""
    from jupyter_core.paths import jupyter_path
    from voila.paths import collect_template_paths

    roots = [str(serve.TEMPLATE_ROOT), *jupyter_path()]
    paths = collect_template_paths(["voila", "nbconvert"], "eoslab", prune=True, root_dirs=roots)
    assert paths[0] == str(serve.TEMPLATE_ROOT / "voila" / "templates" / "eoslab")
    lab = next(p for p in paths if p.endswith(os.path.join("voila", "templates", "lab")))
    with open(os.path.join(lab, "index.html.j2")) as handle:
        lab_urls = set(re.findall(r'href="(https://[^"]+)"', handle.read()))
    ours = (serve.TEMPLATE_ROOT / "voila" / "templates" / "eoslab" / "index.html.j2").read_text()
    blanked = set(re.findall(r'replace\("(https://[^"]+)"', ours))
    assert lab_urls and lab_urls == blanked


def test_binder_environment_pins_every_dependency_and_cpu_torch():
    """binder/ pins each dependency of pyproject.toml exactly, torch as a CPU wheel from
    PyTorch's CPU index, and installs eoslab itself without resolving again."""
    from importlib.metadata import requires
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    root = Path(__file__).resolve().parents[1]
    deps = [r for r in requires("eoslab") if "extra ==" not in r]  # pyproject's dependencies
    assert any(r.startswith("torch") for r in deps)
    lines = [ln.strip() for ln in (root / "binder" / "requirements.txt").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    pins = {}
    for line in lines:
        if line.startswith("--"):
            continue
        req = Requirement(line)
        spec = list(req.specifier)
        assert len(spec) == 1 and spec[0].operator == "==", line
        pins[canonicalize_name(req.name)] = spec[0].version
    for dep in map(Requirement, deps):
        name = canonicalize_name(dep.name)
        assert name in pins, f"binder/requirements.txt does not pin {dep.name}"
        assert dep.specifier.contains(pins[name].split("+")[0]), (dep, pins[name])
    assert pins["torch"].endswith("+cpu")
    assert not any(n.startswith("nvidia-") for n in pins)
    post = (root / "binder" / "postBuild").read_text()
    assert "pip install --no-cache-dir --no-deps -e ." in post
    assert os.access(root / "binder" / "postBuild", os.X_OK)
    assert (root / "binder" / "runtime.txt").read_text().strip() == "python-3.11"


def test_binder_post_build_python_lines_run_here(tmp_path):
    """The ``python`` lines of binder/postBuild run here (a name they import that eoslab no
    longer has would break the Binder build), in a home of their own: the kernel-culling
    configuration lands in its ``~/.jupyter``."""
    import shlex
    import subprocess

    post = (ROOT / "binder" / "postBuild").read_text().splitlines()
    lines = [shlex.split(line) for line in post if line.startswith("python ")]
    assert len(lines) == 2, lines
    env = {k: v for k, v in os.environ.items() if k != "JUPYTER_CONFIG_DIR"}
    env["HOME"] = str(tmp_path)
    for argv in lines:
        out = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True,
                             timeout=300, cwd=ROOT, env=env, check=False)
        assert out.returncode == 0, (argv, out.stderr[-2000:])
    written = json.loads((tmp_path / ".jupyter" / "jupyter_server_config.json").read_text())
    assert written == {"MappingKernelManager": serve.lab_kernel_culling()}


def test_lab_culling_settings_merge_into_the_config_and_reject_bad_values(tmp_path):
    (tmp_path / "jupyter_server_config.json").write_text(
        '{"ServerApp": {"ip": "0.0.0.0"}, "MappingKernelManager": {"cull_busy": false}}')
    path = serve.write_lab_server_config(tmp_path, cull_idle_timeout=90)
    assert json.loads(path.read_text()) == {
        "ServerApp": {"ip": "0.0.0.0"},
        "MappingKernelManager": {"cull_busy": False, "cull_idle_timeout": 90,
                                 "cull_interval": 60, "cull_connected": False}}
    with pytest.raises(ValueError, match="cull_idle_timeout=-1 is not allowed"):
        serve.lab_kernel_culling(-1)
    flags = _flags(serve.lab_argv(tmp_path / "book", cull_idle_timeout=0))
    assert flags["MappingKernelManager.cull_idle_timeout"] == "0"
    assert flags["MappingKernelManager.cull_connected"] == "False"
    with pytest.raises(ValueError, match="cull_idle_timeout=nan"):
        serve.lab_argv(tmp_path / "book", cull_idle_timeout=float("nan"))


def test_preheat_choice_selects_the_pooled_chapters(tmp_path):
    book = ["00_index.ipynb", "01_a.ipynb", "02_b.ipynb"]
    assert serve.preheat_choice(book, "all") == book
    assert serve.preheat_choice(book, "none") == []
    assert serve.preheat_choice(book, "auto", available=0) == []
    assert serve.preheat_choice(book, "auto", available=100 * serve.KERNEL_BYTES) == book
    assert serve.preheat_choice(book, " 02, 00 ") == ["00_index.ipynb", "02_b.ipynb"]
    for bad in ("7", "some", 3):
        with pytest.raises(ValueError, match="preheat="):
            serve.preheat_choice(book, bad)


@pytest.mark.filterwarnings("ignore:--tornado_settings=:DeprecationWarning")
def test_voila_pools_only_the_preheated_chapters(tmp_path, monkeypatch):
    """The denylist flags, read by Voila itself: only the chosen notebook gets a pool."""
    import voila.voila_kernel_manager as vkm
    from voila.app import Voila

    async def nothing():
        return None

    def no_kernel(delay, start):  # Voila's pool task, minus the kernel start
        start.close()
        return nothing()

    monkeypatch.setattr(vkm, "wait_before", no_kernel)
    # Voila queues its pool tasks on asyncio.get_event_loop(); give it a private loop, which
    # this test can drive to the end (the thread's own loop may be running: Playwright's)
    private = asyncio.new_event_loop()
    monkeypatch.setattr(vkm, "asyncio", SimpleNamespace(**{
        **vars(asyncio), "get_event_loop": lambda: private}))

    for name in ("00_index.ipynb", "01_a.ipynb", "02_b.ipynb"):
        (tmp_path / name).write_text((ROOT / "tests" / "fixtures" / "one_slider.ipynb").read_text())
    argv = serve.voila_argv(tmp_path, port=9377, pool_size=1, preheat=["01_a.ipynb"])
    app = Voila()
    app.initialize(argv[3:])
    app.init_settings()  # builds the kernel manager and queues its (kernel-less) pool tasks
    pools = dict(app.kernel_manager._pools)
    tasks = [t for queued in pools.values() for t in queued]
    for task in tasks:
        task.cancel()

    def finish():  # in a thread of its own: this one may be running a loop already
        try:
            private.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        finally:
            private.close()

    with ThreadPoolExecutor(1) as worker:  # finish the cancelled tasks: none left pending
        worker.submit(finish).result(timeout=60)
    assert tasks and all(task.done() and task.get_loop() is private for task in tasks)
    assert list(pools) == ["01_a.ipynb"]
    every = serve.voila_argv(tmp_path, port=9377, pool_size=1)
    assert not [a for a in every if "denylist" in a]


def test_serve_cli_reports_the_preheated_chapters(tmp_path, capsys):
    from eoslab.cli import main

    for name in ("00_index.ipynb", "01_a.ipynb"):
        (tmp_path / name).write_text("{}")
    assert main(["serve", "--book", str(tmp_path), "--preheat", "01", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "preheat_denylist=(.*/)?00_index\\.ipynb$" in out and "01_a" not in out
    assert main(["serve", "--book", str(tmp_path), "--preheat", "09", "--dry-run"]) == 2


def test_readme_and_help_give_the_one_kernel_memory_figure(capsys):
    """KERNEL_BYTES is the one source: the README and ``eoslab serve --help`` print it."""
    import re

    from eoslab.cli import main
    from eoslab.serve.common import kernel_memory_text

    readme = (ROOT / "README.md").read_text()
    figures = re.findall(r"~\s?\d+\s?(?:MB|MiB|GB)", readme)
    assert figures and set(figures) == {kernel_memory_text()}, figures
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert kernel_memory_text() in " ".join(capsys.readouterr().out.split())
