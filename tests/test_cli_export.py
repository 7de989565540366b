"""``eoslab export``: the files it writes hold the stored run's history, config and code."""

import csv
import json
import math
import xml.etree.ElementTree as ET

import pytest

from eoslab.cli import main
from eoslab.cli.export import history_figure
from eoslab.core.config import TrainConfig
from eoslab.core.experiment import run
from eoslab.core.store import RunStore

CONFIG = TrainConfig(steps=20, record_every=2, sharpness_every=10, n_train=64, lr=0.2)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    run(CONFIG, store=RunStore(root))
    return root


@pytest.fixture
def eoslab(store_dir, monkeypatch, capsys):
    monkeypatch.setenv("EOSLAB_STORE", str(store_dir))

    def call(*argv):
        status = main(list(argv))
        out = capsys.readouterr()
        return status, out.out, out.err

    return call


def stored():
    return RunStore().load_run(CONFIG)


def test_export_by_key_writes_files_matching_the_run(eoslab, tmp_path):
    status, out, _ = eoslab("runs", "--json")
    keys = [json.loads(line)["key"] for line in out.splitlines()]
    assert keys == [CONFIG.key()]
    status, out, err = eoslab("export", keys[0], "--out", str(tmp_path / "x"))
    assert status == 0, err
    written = sorted(p.name for p in (tmp_path / "x").iterdir())
    assert written == sorted(f"{CONFIG.key()}.{s}" for s in ("csv", "json", "png", "py", "svg"))
    history = stored().history
    assert len(history) == 11  # steps 0, 2, ..., 20

    rows = list(csv.DictReader((tmp_path / "x" / f"{CONFIG.key()}.csv").open()))
    assert [int(r["step"]) for r in rows] == [h["step"] for h in history]
    assert [float(r["loss"]) for r in rows] == [h["loss"] for h in history]  # exact
    sharp = [float(r["sharpness"]) for r in rows if r["sharpness"]]
    assert sharp == [h["sharpness"] for h in history if "sharpness" in h] and len(sharp) == 3

    blob = json.loads((tmp_path / "x" / f"{CONFIG.key()}.json").read_text())
    assert blob["key"] == CONFIG.key() and blob["status"] == "finished"
    assert TrainConfig.from_dict(blob["config"]) == CONFIG
    assert blob["history"] == json.loads(json.dumps(history))

    svg = (tmp_path / "x" / f"{CONFIG.key()}.svg").read_text()
    text = " ".join(el.text for el in ET.fromstring(svg).iter() if el.text)
    for title in ("training loss", "sharpness vs 2/eta", "fc-tanh on digits, gd lr=0.2"):
        assert title in text
    figure = history_figure(history).to_dict()["datasets"]
    assert [r["value"] for r in figure["sharpness"] if r["curve"] == "2/eta"] == [10.0] * 11
    assert [r["value"] for r in figure["sharpness"] if r["curve"] == "sharpness"] == sharp
    assert [r["loss"] for r in figure["loss"]] == [h["loss"] for h in history]
    assert (tmp_path / "x" / f"{CONFIG.key()}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    scope = {"__name__": "exported"}
    exec((tmp_path / "x" / f"{CONFIG.key()}.py").read_text(), scope)
    assert scope["config"] == CONFIG


def test_export_by_prefix_or_config_file_and_chosen_formats(eoslab, tmp_path):
    status, out, err = eoslab("export", CONFIG.key()[:6], "--out", str(tmp_path),
                              "--format", "csv", "code")
    assert status == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{CONFIG.key()}.csv",
                                                          f"{CONFIG.key()}.py"]
    config_file = tmp_path / "c.json"
    config_file.write_text(json.dumps(CONFIG.to_dict()))
    status, out, err = eoslab("export", str(config_file), "--out", str(tmp_path / "y"),
                              "--format", "json")
    assert status == 0, err
    blob = json.loads((tmp_path / "y" / f"{CONFIG.key()}.json").read_text())
    assert len(blob["history"]) == len(stored().history)
    assert not any(isinstance(v, float) and not math.isfinite(v)
                   for row in blob["history"] for v in row.values())


def test_bad_input_is_a_one_line_error(eoslab, tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps(CONFIG.replace(lr=0.05).to_dict()))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cases = [
        (("0123456789abcdef", "--out", str(tmp_path)),
         "run '0123456789abcdef' is not in the store"),
        ((str(other), "--out", str(tmp_path)), f"run `eoslab run --config {other}` first"),
        ((CONFIG.key(), "--format", "svg", "gif"), "--format 'gif' is not allowed"),
        ((CONFIG.key(), "--out", str(blocker / "sub")),
         f"--out '{blocker / 'sub'}' cannot be written"),
        (("a/b", "--out", str(tmp_path)), "run 'a/b': No such file"),
    ]
    for argv, message in cases:
        status, out, err = eoslab("export", *argv)
        assert status == 2 and message in err, (argv, err)
        assert len(err.strip().splitlines()) == 1 and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "other.json"]
