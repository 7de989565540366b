import subprocess
import sys


def _eoslab(*args, env_store):
    import os

    env = {**os.environ, "EOSLAB_STORE": env_store}
    return subprocess.run([sys.executable, "-m", "eoslab.cli", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_run_shows_the_loss_falling(tmp_path):
    out = _eoslab("run", "--steps", "200", "--lr", "0.1", "--quiet", env_store=str(tmp_path))
    assert out.returncode == 0, out.stderr
    summary = out.stdout.strip().splitlines()[-1]
    assert summary.startswith("finished: loss")
    first, last = (float(v) for v in summary.split("loss ")[1].split(" in ")[0].split(" -> "))
    assert last < 0.5 * first
    again = _eoslab("run", "--steps", "200", "--lr", "0.1", "--quiet", env_store=str(tmp_path))
    assert "from the store" in again.stdout


def test_run_with_a_huge_lr_reports_divergence_without_a_traceback(tmp_path):
    out = _eoslab("run", "--steps", "300", "--lr", "10", "--quiet", env_store=str(tmp_path))
    assert out.returncode == 3
    assert "diverged at step" in out.stderr and "Traceback" not in out.stderr
    assert "DIVERGED at step" in out.stdout


def test_bad_flags_are_clear_errors(tmp_path):
    out = _eoslab("run", "--model", "resnet50", env_store=str(tmp_path))
    assert out.returncode == 2 and "model='resnet50' is not allowed" in out.stderr
    assert "Traceback" not in out.stderr
    out = _eoslab("run", "--lr", "-1", env_store=str(tmp_path))
    assert out.returncode == 2 and "lr=-1.0 is not allowed" in out.stderr


def test_config_file_and_flags(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"steps": 20, "n_train": 64, "width": 8, "lr": 0.05}')
    out = _eoslab("run", "--config", str(cfg), "--lr", "0.02", "--quiet",
                  env_store=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "lr=0.02" in out.stdout and "in 20 steps" in out.stdout
