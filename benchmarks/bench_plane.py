"""Benchmark: a 41x41 loss plane, batched (vmap over parameter sets) vs per-point loops.

The plane passes through three fc-tanh nets (digits default: 1000 training examples,
width 200, depth 2, MSE; model seeds 0, 1, 2).  Each method computes the training loss
and accuracy at every grid point:

* ``batched``   -- :meth:`eoslab.geometry.plane.Plane.evaluate`: the first layer's
  responses once per direction (:mod:`eoslab.speed.linear_head`), then ``torch.func.vmap``
  over the stacked parameter sets of the rest, memory-bounded batches of points (see
  ``bench_plane.md``);
* ``loop``      -- per point ``model.load_state_dict(point)`` and one full-batch forward;
* ``loop-tools``-- what loss-landscape tools do (Li et al. 2018's ``plot_surface``): per
  point, write the weights into the model, then evaluate over a ``DataLoader`` with
  minibatches of 128, summing ``loss.item()`` and ``correct.item()`` per minibatch.

The loops run inside :func:`eoslab.speed.accelerated`, so they get the same fast ``tanh``
and retained heap as the batched path (the ratio measures batching, not kernels).  The
methods alternate within each repetition; the table reports the median seconds and
the ratio to ``batched`` (target: >= 5x against the per-point load_state_dict loops).
``--width`` adds rows for narrower nets, where per-point overhead dominates.

    python benchmarks/bench_plane.py [--n 41] [--reps 3] [--threads 0] [--width 200 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from eoslab import speed
from eoslab.core.data import load_dataset
from eoslab.core.losses import accuracy, get_loss
from eoslab.core.models import build_model
from eoslab.curvature.objective import Objective, trainable_params
from eoslab.geometry.plane import Plane


def batched(plane, objective, xs, ys):
    out = plane.evaluate(objective, xs, ys)
    return torch.tensor(out["loss"]), torch.tensor(out["acc"])


@torch.no_grad()
def loop(plane, model, data, xs, ys):
    """One load_state_dict and one full-batch forward per grid point."""
    loss_fn, state = get_loss("mse"), model.state_dict()
    loss, acc = torch.zeros(len(xs), len(ys)), torch.zeros(len(xs), len(ys))
    model.eval()
    for i, x in enumerate(xs.tolist()):
        for j, y in enumerate(ys.tolist()):
            model.load_state_dict({**state, **plane.point(x, y)})
            out = model(data.x_train)
            loss[i, j] = loss_fn(out, data.y_train).item()
            acc[i, j] = accuracy(out, data.y_train).item()
    return loss, acc


@torch.no_grad()
def loop_tools(plane, model, data, xs, ys, batch_size=128):
    """Li et al.'s evaluation: set weights, then a DataLoader pass with per-batch .item()."""
    loss_fn = get_loss("mse")
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=batch_size,
                        shuffle=False)
    params = dict(model.named_parameters())
    loss, acc = torch.zeros(len(xs), len(ys)), torch.zeros(len(xs), len(ys))
    model.eval()
    for i, x in enumerate(xs.tolist()):
        for j, y in enumerate(ys.tolist()):
            for name, value in plane.point(x, y).items():
                params[name].data.copy_(value)
            total, correct, n = 0.0, 0.0, 0
            for xb, yb in loader:
                out = model(xb)
                total += loss_fn(out, yb).item() * xb.shape[0]
                correct += (out.argmax(1) == yb.argmax(1)).sum().item()
                n += xb.shape[0]
            loss[i, j], acc[i, j] = total / n, correct / n
    return loss, acc


def with_speed_layers(model, fn, *args):
    """``fn(*args)`` inside :func:`eoslab.speed.accelerated`, as the engines run."""
    with speed.accelerated(model):
        return fn(*args)


def timed(fn, sync):
    sync()
    start = time.perf_counter()
    result = fn()
    sync()
    return time.perf_counter() - start, result


def bench_width(width, args, data, sync):
    device = data.x_train.device
    nets = [build_model("fc-tanh", data.input_shape, data.n_outputs, width=width, seed=s,
                        device=device) for s in (0, 1, 2)]
    plane = Plane.through(*(trainable_params(m) for m in nets))
    xs, ys = plane.grid(n=args.n)
    model = nets[0]
    objective = Objective(model, "mse", data.x_train, data.y_train)
    methods = {"batched": lambda: batched(plane, objective, xs, ys),
               "loop": lambda: with_speed_layers(model, loop, plane, model, data, xs, ys),
               "loop-tools": lambda: with_speed_layers(model, loop_tools, plane, model, data,
                                                       xs, ys)}
    times = {k: [] for k in methods}
    results = {}
    for _ in range(args.reps):
        for name, fn in methods.items():
            seconds, results[name] = timed(fn, sync)
            times[name].append(seconds)
    ref_loss, ref_acc = results["batched"]
    for name in ("loop", "loop-tools"):
        err = float((results[name][0] - ref_loss).abs().max() / ref_loss.abs().max())
        assert err < 1e-4, f"{name} disagrees with batched: relative error {err:.2e}"
        assert float((results[name][1] - ref_acc).abs().max()) <= 1.5 / data.n_train
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for name in methods:
        rows.append((width, name, med[name], med[name] / (args.n ** 2) * 1e3,
                     med[name] / med["batched"]))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=41)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (0: torch's default, one per core)")
    parser.add_argument("--width", type=int, nargs="+", default=[200, 32])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset("digits", device=args.device)
    device = data.x_train.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"# {args.n}x{args.n} plane, digits n_train={data.n_train}, fc-tanh depth 2, MSE")
    print(f"# device={device} ({name or platform.machine()}), torch {torch.__version__}, "
          f"threads={torch.get_num_threads()}, cpus={os.cpu_count()}, "
          f"load={os.getloadavg()[0]:.1f}, reps={args.reps} (median), "
          f"speed layers {'on' if speed.enabled() else 'off'}")
    print("| width | method | seconds | ms / point | x batched |")
    print("|---|---|---|---|---|")
    for width in args.width:
        for w, method, sec, per, ratio in bench_width(width, args, data, sync):
            print(f"| {w} | {method} | {sec:.2f} | {per:.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
