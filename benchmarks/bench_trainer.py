"""Benchmark: per-step overhead of eoslab's training loop against a bare PyTorch GD loop.

Same model (fc-tanh, width 200, depth 2), same data (digits, 1000 examples), same
full-batch GD step; the loops alternate in one run and the median over repetitions is
reported.  ``fit`` applies the speed layers of :mod:`eoslab.speed` (unless
``EOSLAB_SPEED=0``), so the baseline ``bare loop`` runs inside ``speed.accelerated`` too
and the ratio measures the loop's bookkeeping; ``bare loop, plain torch`` is the same loop
without them.  Target: ratio <= 1.10 (issue 2).

    python benchmarks/bench_trainer.py [--steps 200] [--reps 7] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from eoslab import speed
from eoslab.core.data import load_dataset
from eoslab.core.losses import get_loss
from eoslab.core.models import build_model
from eoslab.core.optim import make_optimizer
from eoslab.core.train import fit


def bare_loop(model, data, lr, steps):
    """What a user would write by hand: forward, backward, SGD step; no bookkeeping."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = get_loss("mse")
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(data.x_train), data.y_train).backward()
        opt.step()


def bare_loop_accelerated(model, data, lr, steps):
    """The bare loop with the speed layers ``fit`` applies."""
    with speed.accelerated(model):
        bare_loop(model, data, lr, steps)


def eoslab_loop(model, data, lr, steps, record_every):
    opt = make_optimizer("gd", model.parameters(), lr)
    fit(model, data, "mse", opt, steps=steps, record_every=record_every, eval_test=False)


def timed(fn, sync):
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    data = load_dataset("digits", device=args.device)
    device = data.x_train.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def fresh():
        return build_model("fc-tanh", data.input_shape, data.n_outputs, seed=0, device=device)

    variants = {
        "bare loop": lambda: bare_loop_accelerated(fresh(), data, 0.1, args.steps),
        "bare loop, plain torch": lambda: bare_loop(fresh(), data, 0.1, args.steps),
        "eoslab fit (record at end)": lambda: eoslab_loop(fresh(), data, 0.1, args.steps,
                                                          args.steps),
        "eoslab fit (record every 10)": lambda: eoslab_loop(fresh(), data, 0.1, args.steps, 10),
    }
    for fn in variants.values():  # warm-up
        fn()
    times = {name: [] for name in variants}
    for _ in range(args.reps):
        for name, fn in variants.items():
            times[name].append(timed(fn, sync))
    base = statistics.median(times["bare loop"])
    cpu = platform.processor() or platform.machine()
    print(f"# trainer overhead: {args.steps} full-batch GD steps, digits 1000 x 64, fc-tanh "
          f"200x2, {device}, torch {torch.__version__}, {cpu}"
          f", {torch.get_num_threads()} threads, median of {args.reps}, "
          f"speed layers {'on' if speed.enabled() else 'off'}")
    print(f"{'loop':32s} {'ms/step':>9s} {'ratio':>7s}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:32s} {1e3 * med / args.steps:9.3f} {med / base:7.3f}")


if __name__ == "__main__":
    main()
