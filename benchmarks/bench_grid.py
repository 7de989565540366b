"""Benchmark: a 16-config step-size grid through ``eoslab sweep`` vs 16 ``eoslab run`` processes,
and through Ray on this machine vs locally.

Every variant is the command a user would type, timed wall-clock from launch to exit, each on
a fresh store (``EOSLAB_STORE`` in a temporary folder), alternating inside every repetition:

* ``16 x eoslab run``: one process per step size, one after the other (the baseline);
* ``eoslab sweep``: one process, the 16 step sizes as one batched group;
* ``eoslab sweep --ray``: starts a local Ray instance, sends the group as one Ray task;
* ``eoslab sweep --ray ADDR``: joins a Ray cluster this script started beforehand
  (``ray.init(num_cpus=...)`` here), so Ray's own start-up is not counted.

Printed: medians, the speed-up of the local sweep over the 16 processes, and the overhead
ratios of the Ray variants over the local sweep.  Each variant's store is checked to hold
all 16 results.

    python benchmarks/bench_grid.py [--reps 1] [--steps 200] [--n-train 200] [--width 32]
        [--threads N] [--skip-ray]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LRS = [round(0.01 * 1.25**k, 6) for k in range(16)]  # 0.01 .. 0.28, log-spaced


def machine() -> str:
    model = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                     if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    import torch

    return (f"{model}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"CUDA {'yes' if torch.cuda.is_available() else 'no'}")


def eoslab(args, store, env) -> None:
    out = subprocess.run([sys.executable, "-m", "eoslab.cli", *args], cwd=ROOT,
                         env={**env, "EOSLAB_STORE": str(store)}, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"eoslab {' '.join(args)} failed:\n{out.stderr[-2000:]}")


def check(store) -> None:
    found = len(list(Path(store).glob("runs/*/result.json")))
    if found != len(LRS):
        raise SystemExit(f"{store} holds {found} results, expected {len(LRS)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0,
                        help="OMP_NUM_THREADS of every process (0: leave torch's default)")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    env = dict(os.environ)
    env.pop("EOSLAB_QUICK", None)
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    base = ["--n-train", str(args.n_train), "--width", str(args.width), "--steps",
            str(args.steps), "--record-every", "10", "--device", "cpu", "--quiet"]
    grid = ["--grid", "lr=" + ",".join(map(str, LRS))]

    variants = {
        "16 x eoslab run": lambda store: [eoslab(["run", *base, "--lr", str(lr)], store, env)
                                          for lr in LRS],
        "eoslab sweep": lambda store: eoslab(["sweep", *base, *grid], store, env),
    }
    address, ray = None, None
    if not args.skip_ray:
        import ray

        from eoslab.core.ray_sweep import ray_runtime_env

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING",
                 runtime_env=ray_runtime_env())
        address = ray.get_runtime_context().gcs_address
        variants["eoslab sweep --ray"] = lambda store: eoslab(
            ["sweep", *base, *grid, "--ray", "--num-cpus", str(os.cpu_count())], store, env)
        variants["eoslab sweep --ray ADDR"] = lambda store: eoslab(
            ["sweep", *base, *grid, "--ray", address], store, env)
    times = {name: [] for name in variants}
    try:
        for _ in range(args.reps):
            for name, fn in variants.items():
                with tempfile.TemporaryDirectory() as store:
                    t0 = time.perf_counter()
                    fn(store)
                    times[name].append(time.perf_counter() - t0)
                    check(store)
                print(f"# {name}: {times[name][-1]:.1f} s", file=sys.stderr, flush=True)
    finally:
        if ray is not None:
            ray.shutdown()
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"# {machine()}")
    print(f"# 16 step sizes {LRS[0]}..{LRS[-1]}, digits n_train={args.n_train}, fc-tanh "
          f"width {args.width}, {args.steps} steps, median of {args.reps}, "
          f"OMP_NUM_THREADS={env.get('OMP_NUM_THREADS', 'default')}")
    print(f"{'variant':28s} {'seconds':>8s} {'vs 16 runs':>11s} {'vs sweep':>9s}")
    for name, t in med.items():
        print(f"{name:28s} {t:8.1f} {med['16 x eoslab run'] / t:10.2f}x "
              f"{t / med['eoslab sweep']:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
