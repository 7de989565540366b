"""Benchmark: full-batch GD steps per second on cifar10-5k fc-tanh against the floor of one step.

The floor of one step is the larger of its arithmetic time (the FLOPs of forward and
backward at the device's peak) and its memory time (the bytes that must cross device
memory at least once, at the device's bandwidth).  For an MLP with layer sizes
:math:`d_0 \\to d_1 \\to \\dots \\to d_L` on :math:`n` examples:

.. math::

    \\text{FLOPs} = 2n\\Big(\\underbrace{\\sum_l d_{l-1} d_l}_{\\text{forward}}
    + \\underbrace{\\sum_l d_{l-1} d_l}_{\\partial W} + \\underbrace{\\sum_{l \\ge 2}
    d_{l-1} d_l}_{\\partial x}\\Big),
    \\qquad
    \\text{bytes} \\ge 4\\big(n(d_0 + d_L) + 2P\\big)

(float32: read the inputs and targets once, read the :math:`P` parameters and write them
back once; an ideal fused kernel streams examples and keeps everything else on chip).
Elementwise work (tanh, its derivative, the loss) adds :math:`O(n \\sum_l d_l)` FLOPs,
under 1% here, and is left out.

Peaks are measured in the same run: a large float32 matmul (TF32 off, PyTorch's
default) for FLOP/s and a large device-to-device copy for bytes/s.  Timed: a bare
PyTorch loop, :func:`eoslab.core.train.fit` (recording only at the end), and
:func:`eoslab.core.sweep.fit_batched` with ``--copies`` copies (per copy-step).

Needs a CUDA GPU and the CIFAR-10 files (``pip install 'eoslab[cifar]'``, then
``torchvision.datasets.CIFAR10(root, download=True)`` with ``root`` = ``$EOSLAB_DATA``);
``--synthetic`` uses random tensors of the same shapes (timing does not depend on the
values).  Without a GPU it prints the analytic floor and what it needs, and exits 0
(``--device cpu --synthetic`` measures the CPU against its own measured peaks).

    python benchmarks/bench_gpu_floor.py [--steps 50] [--reps 5] [--copies 16]
        [--synthetic] [--device cuda|cpu]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time

import torch

from eoslab.core.losses import get_loss

N_TRAIN, INPUT, WIDTH, DEPTH, CLASSES = 5000, 3 * 32 * 32, 200, 2, 10


def analytic_floor(n=N_TRAIN, d_in=INPUT, width=WIDTH, depth=DEPTH, d_out=CLASSES,
                   bytes_per=4) -> dict:
    """FLOPs, minimal bytes and parameter count of one full-batch GD step of the MLP."""
    sizes = [d_in] + [width] * depth + [d_out]
    layers = list(itertools.pairwise(sizes))
    macs = sum(a * b for a, b in layers)
    params = sum(a * b + b for a, b in layers)
    flops = 2 * n * (macs + macs + sum(a * b for a, b in layers[1:]))
    moved = bytes_per * (n * (d_in + d_out) + 2 * params)
    return {"flops": flops, "bytes": moved, "params": params, "forward_flops": 2 * n * macs}


def measured_peaks(device, sync) -> tuple[float, float]:
    """(FLOP/s of a large float32 matmul, bytes/s of a large copy) on ``device``."""
    size = 8192 if device.type == "cuda" else 1536
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    src = torch.empty(256 * 2**20 if device.type == "cuda" else 32 * 2**20, device=device)
    dst = torch.empty_like(src)

    def best(fn, reps=5):
        fn()
        sync()
        out = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - start)
        return min(out)

    flops = 2 * size**3 / best(lambda: torch.mm(a, b))
    bandwidth = 2 * src.numel() * 4 / best(lambda: dst.copy_(src))
    return flops, bandwidth


def load_data(device, synthetic: bool):
    if synthetic:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(N_TRAIN, 3, 32, 32, generator=gen).to(device)
        labels = torch.randint(0, CLASSES, (N_TRAIN,), generator=gen)
        y = torch.nn.functional.one_hot(labels, CLASSES).float().to(device)
        from eoslab.core.data import Dataset

        return Dataset("cifar10-5k (synthetic values)", x, y, x[:0], y[:0], CLASSES, (3, 32, 32))
    from eoslab.core.data import load_dataset

    return load_dataset("cifar10-5k", device=device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--copies", type=int, default=16)
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    floor = analytic_floor()
    print(f"# one full-batch GD step, fc-tanh {WIDTH}x{DEPTH} on {N_TRAIN} CIFAR-10 images "
          f"({floor['params']:,} parameters): {floor['flops'] / 1e9:.2f} GFLOP "
          f"(forward {floor['forward_flops'] / 1e9:.2f}), at least "
          f"{floor['bytes'] / 1e6:.1f} MB moved")
    want_cuda = args.device in ("auto", "cuda")
    if want_cuda and not torch.cuda.is_available():
        print("# NOT MEASURED: no CUDA GPU here. This benchmark needs a CUDA GPU (and the "
              "CIFAR-10 files: pip install 'eoslab[cifar]', then "
              "torchvision.datasets.CIFAR10($EOSLAB_DATA, download=True); or --synthetic). "
              "--device cpu --synthetic measures this CPU instead.")
        for name, tflops, tbs in [("H100 SXM", 67.0, 3.35), ("A100 SXM", 19.5, 2.04)]:
            t_flop, t_mem = floor["flops"] / (tflops * 1e12), floor["bytes"] / (tbs * 1e12)
            bound = "compute" if t_flop > t_mem else "memory"
            print(f"#   e.g. {name} (nominal {tflops} TFLOP/s fp32, {tbs} TB/s): floor "
                  f"{1e3 * max(t_flop, t_mem):.3f} ms/step = "
                  f"{1 / max(t_flop, t_mem):,.0f} steps/s ({bound} bound)")
        return 0
    device = torch.device("cuda" if want_cuda else args.device)
    try:
        data = load_data(device, args.synthetic)
    except (ImportError, FileNotFoundError, ValueError) as err:
        print(f"# NOT MEASURED: cifar10-5k is not available ({err}). Install the data as above "
              "or pass --synthetic.")
        return 0
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    peak_flops, peak_bw = measured_peaks(device, sync)
    t_floor = max(floor["flops"] / peak_flops, floor["bytes"] / peak_bw)
    from eoslab.core.models import build_model
    from eoslab.core.optim import make_optimizer
    from eoslab.core.sweep import fit_batched
    from eoslab.core.train import fit

    loss = get_loss("mse")

    def model():
        return build_model("fc-tanh", data.input_shape, data.n_outputs, seed=0, device=device)

    def bare(steps):
        m = model()
        opt = torch.optim.SGD(m.parameters(), lr=0.01)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss(m(data.x_train), data.y_train).backward()
            opt.step()

    def eoslab_fit(steps):
        m = model()
        fit(m, data, "mse", make_optimizer("gd", m.parameters(), 0.01), steps=steps,
            record_every=steps, eval_test=False)

    def sweep(steps):
        fit_batched([model() for _ in range(args.copies)], data, "mse",
                    [0.01 * (i + 1) / args.copies for i in range(args.copies)], steps=steps,
                    record_every=steps, eval_test=False)

    variants = {"bare PyTorch loop": (bare, 1), "eoslab fit": (eoslab_fit, 1),
                f"sweep of {args.copies} (per copy)": (sweep, args.copies)}
    times = {name: [] for name in variants}
    for fn, _ in variants.values():
        fn(2)
    for _ in range(args.reps):
        for name, (fn, copies) in variants.items():
            sync()
            start = time.perf_counter()
            fn(args.steps)
            sync()
            times[name].append((time.perf_counter() - start) / (args.steps * copies))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    bound = "compute" if floor["flops"] / peak_flops > floor["bytes"] / peak_bw else "memory"
    print(f"# {where}, torch {torch.__version__}, data: {data.name}; measured peaks "
          f"{peak_flops / 1e12:.2f} TFLOP/s fp32 matmul, {peak_bw / 1e9:.0f} GB/s copy; floor "
          f"{1e3 * t_floor:.3f} ms/step ({bound} bound); "
          f"median of {args.reps} x {args.steps} steps")
    print(f"{'loop':28s} {'ms/step':>9s} {'steps/s':>9s} {'TFLOP/s':>8s} {'of floor':>8s}")
    for name, values in times.items():
        sec = statistics.median(values)
        print(f"{name:28s} {1e3 * sec:9.3f} {1 / sec:9.1f} {floor['flops'] / sec / 1e12:8.2f} "
              f"{t_floor / sec:8.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
