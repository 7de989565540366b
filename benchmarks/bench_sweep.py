"""Benchmark: a batched sweep of 16 step sizes against 16 sequential ``fit`` runs.

Same data (digits, 300 training examples unless ``--n-train``), same model (fc-tanh, width 32
unless ``--width``, depth 2): by default the network chapter 06 sweeps; ``--width 200
--n-train 1000`` is the digits default of the other chapters.  Same full-batch GD steps and
recording (every 10 steps, with test loss / accuracy); the
baseline is :func:`eoslab.core.train.fit` once per step size, the contender
:func:`eoslab.core.sweep.fit_batched` on all of them at once.  With ``--sharpness-every k``
both also track the sharpness every ``k`` steps (the baseline with
:class:`eoslab.curvature.sharpness.SharpnessProbe`, the sweep with its batched Lanczos; same
residual tolerance 1e-2).  Variants alternate within each repetition so machine load
hits them alike; the table gives medians and each time's ratio to its baseline.
``--compile`` adds ``torch.compile`` of the sweep step (first-call compile time shown
separately).  The last column checks that the two agree (largest relative difference of
the final losses).

    python benchmarks/bench_sweep.py [--steps 200] [--copies 16] [--reps 3]
        [--sharpness-every 20] [--threads N] [--device cpu] [--width 32] [--n-train 300]
        [--compile]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from bench_gpu_floor import analytic_floor, measured_peaks

from eoslab import speed
from eoslab.core.data import load_dataset
from eoslab.core.models import build_model
from eoslab.core.optim import make_optimizer
from eoslab.core.sweep import fit_batched
from eoslab.core.train import fit


def lrs_for(copies: int) -> list[float]:
    """Step sizes across the interesting range for digits (2/eta from 100 down to ~6)."""
    return [float(v) for v in np.linspace(0.02, 0.32, copies)]


def sequential(data, lrs, steps, sharpness_every, width=32):
    probes = []
    runs = []
    for lr in lrs:
        model = build_model("fc-tanh", data.input_shape, data.n_outputs, seed=0,
                            width=width, device=data.x_train.device)
        if sharpness_every:
            from eoslab.curvature.sharpness import SharpnessProbe

            probes = [SharpnessProbe(every=sharpness_every)]
        opt = make_optimizer("gd", model.parameters(), lr)
        runs.append(fit(model, data, "mse", opt, steps=steps, record_every=10, probes=probes))
    return runs


def batched(data, lrs, steps, sharpness_every, width=32, compile=False):
    models = [build_model("fc-tanh", data.input_shape, data.n_outputs, seed=0,
                          width=width, device=data.x_train.device) for _ in lrs]
    return fit_batched(models, data, "mse", lrs, steps=steps, record_every=10,
                       sharpness_every=sharpness_every, compile=compile)


def timed(fn, sync):
    sync()
    start = time.perf_counter()
    out = fn()
    sync()
    return time.perf_counter() - start, out


def agreement(a, b) -> float:
    worst = 0.0
    for ra, rb in zip(a, b):
        la, lb = ra.history[-1]["loss"], rb.history[-1]["loss"]
        worst = max(worst, abs(la - lb) / max(abs(lb), 1e-30))
    return worst


def print_ceiling(args, data, times, sync):
    """The arithmetic floor of one copy-step and the speed-up it allows over ``16 x fit``.

    Every copy-step does the same float32 matrix products however the copies are batched
    (forward, weight gradients, input gradients of all but the first layer); at this
    device's large-matmul rate they take ``floor`` seconds.  No batching can make the
    sweep faster than ``floor`` per copy-step (elementwise work is left out, so the real
    bound is lower still): sequential time / floor is the largest speed-up possible.
    """
    floor = analytic_floor(n=data.n_train, d_in=data.x_train[0].numel(), width=args.width,
                           depth=2, d_out=data.n_outputs)
    peak_flops, _ = measured_peaks(data.x_train.device, sync)
    t_floor = floor["flops"] / peak_flops
    seq = statistics.median(times["16 x fit"]) / (args.steps * args.copies)
    print(f"# floor: {floor['flops'] / 1e6:.1f} MFLOP per copy-step at {peak_flops / 1e9:.1f} "
          f"GFLOP/s (large float32 matmul, measured now) = {1e3 * t_floor:.3f} ms; "
          f"16 x fit takes {1e3 * seq:.3f} ms, so no batching can exceed "
          f"{seq / t_floor:.2f}x here")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--copies", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sharpness-every", type=int, default=20,
                        help="also time both with sharpness tracking (0: skip)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--width", type=int, default=32,
                        help="hidden width (default 32, chapter 06's; the digits default is 200)")
    parser.add_argument("--n-train", type=int, default=300,
                        help="digits training examples (default 300, chapter 06's; 1000 elsewhere)")
    parser.add_argument("--compile", action="store_true", help="add a torch.compile variant")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset("digits", n_train=args.n_train, device=args.device)
    device = data.x_train.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    lrs = lrs_for(args.copies)
    k = args.sharpness_every
    w = args.width
    variants = {"16 x fit": lambda s: sequential(data, lrs, s, 0, w),
                "sweep (batched)": lambda s: batched(data, lrs, s, 0, w)}
    if args.compile:
        variants["sweep + torch.compile"] = lambda s: batched(data, lrs, s, 0, w, True)
    if k:
        variants[f"16 x fit + sharpness/{k}"] = lambda s: sequential(data, lrs, s, k, w)
        variants[f"sweep + sharpness/{k}"] = lambda s: batched(data, lrs, s, k, w)
    baseline = {name: ("16 x fit + sharpness" if "sharpness" in name else "16 x fit")
                for name in variants}
    first = {}
    for name, fn in variants.items():  # short warm-up (compile time for the compile variant)
        first[name] = timed(lambda fn=fn: fn(2), sync)[0]
    times = {name: [] for name in variants}
    outputs = {}
    for _ in range(args.reps):
        for name, fn in variants.items():
            seconds, outputs[name] = timed(lambda fn=fn: fn(args.steps), sync)
            times[name].append(seconds)
    cpu = platform.processor() or platform.machine()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu} CPU"
    print(f"# sweep of {args.copies} step sizes {lrs[0]:.2g}..{lrs[-1]:.2g} vs sequential fit: "
          f"{args.steps} full-batch GD steps, digits {data.n_train} x 64, fc-tanh "
          f"{args.width}x2, {where}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.reps}, "
          f"speed layers {'on' if speed.enabled() else 'off'}")
    print(f"{'variant':28s} {'seconds':>8s} {'ms/copy-step':>12s} {'speed-up':>8s} "
          f"{'warm-up':>10s} {'max rel dloss':>13s}")
    for name, values in times.items():
        med = statistics.median(values)
        base_name = next(n for n in variants if n.startswith(baseline[name]))
        base = statistics.median(times[base_name])
        diff = agreement(outputs[name], outputs[base_name])
        print(f"{name:28s} {med:8.2f} {1e3 * med / (args.steps * args.copies):12.3f} "
              f"{base / med:8.2f} {first[name]:10.2f} {diff:13.1e}")
    print_ceiling(args, data, times, sync)
    statuses = [r.status for r in outputs["sweep (batched)"]]
    print(f"# statuses of the sweep's copies: {statuses.count('finished')} finished, "
          f"{statuses.count('diverged')} diverged")


if __name__ == "__main__":
    main()
