"""Benchmark: the sharpness (top Hessian eigenvalue) on the digits default, three ways.

Questions, answered in one run on the same model and data (fc-tanh width 200 depth 2,
1000 digits examples, MSE, float32):

1. Cold estimate: eoslab's Lanczos (``top_eigen``) vs PyHessian's power iteration
   (``hessian(...).eigenvalues()``) vs ``scipy.sparse.linalg.eigsh`` over eoslab's products:
   wall time, Hessian-vector products and the relative error against a float64
   reference, at initialisation and at the edge of stability.  Tolerances mean different
   things (eoslab/ARPACK: a residual bound; PyHessian: the change between two power
   iterations), so each method runs a ladder of tolerances and the comparison at equal
   accuracy takes, per target error, each method's cheapest setting whose worst error over
   the repetitions meets it.
2. Warm start: along a GD run (lr 0.4, which sharpens then reaches the edge of
   stability), re-estimate 5 steps after the previous estimate, warm-started from its
   eigenvector vs cold (random start), in both phases.
3. Tracking overhead: ``fit`` on the digits default (lr 0.1, GD) with and without
   ``SharpnessProbe(every=10 / 20)``.

PyHessian is installed only for this script, with ``pip install --no-deps --target`` into
a folder outside the repository (it must not become a dependency of eoslab, and its
unpinned torch requirement must not pull a CUDA torch).

Run: ``python benchmarks/bench_sharpness.py [--reps 5] [--threads 1]``.
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
import warnings
from functools import partial

import numpy as np
import torch

from eoslab import Objective, build_model, fit, load_dataset
from eoslab.core.losses import mse
from eoslab.curvature.eigen import top_eigen
from eoslab.curvature.hessian import HessianOperator
from eoslab.curvature.sharpness import SharpnessProbe

PYHESSIAN_DIR = os.path.join(tempfile.gettempdir(), "eoslab-bench-pyhessian")


def import_pyhessian():
    """PyHessian from its own folder, installed there (no deps) on first use."""
    if not os.path.isdir(os.path.join(PYHESSIAN_DIR, "pyhessian")):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", PYHESSIAN_DIR, "pyhessian==0.1"], check=True)
    sys.path.insert(0, PYHESSIAN_DIR)
    import importlib

    importlib.import_module("pyhessian")
    return sys.modules["pyhessian.hessian"]  # the module (the package re-exports the class)


def setup(device):
    data = load_dataset("digits", device=device)
    model = build_model("fc-tanh", data.input_shape, data.n_outputs, device=device)
    return data, model


def timed(fn, *args):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def reference_sharpness(model, data) -> float:
    """float64 Lanczos to 1e-10: the value every method is scored against."""
    m64 = build_model("fc-tanh", data.input_shape, data.n_outputs, device=data.x_train.device,
                      dtype="float64")
    m64.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    obj = Objective(m64, "mse", data.x_train.double(), data.y_train.double())
    return float(top_eigen(HessianOperator(obj), 1, tol=1e-10).values[0])


LADDERS = {"eoslab Lanczos": (1e-1, 3e-2, 1e-2, 1e-3, 1e-4),
           "scipy eigsh (same HVP)": (1e-1, 1e-2, 1e-3, 1e-4),
           "PyHessian power it.": (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)}


def cold_comparison(model, data, reps: int, ph) -> dict:
    """Every method at every tolerance of its ladder: median time/HVPs, worst error."""
    from scipy.sparse.linalg import eigsh

    ref = reference_sharpness(model, data)
    obj = Objective(model, "mse", data.x_train, data.y_train)
    counter = {"n": 0}
    original = ph.hessian_vector_product

    def counting(gradsH, params, v):
        counter["n"] += 1
        return original(gradsH, params, v)

    ph.hessian_vector_product = counting

    def eoslab_run(seed, tol):
        op = HessianOperator(obj)
        res = top_eigen(op, 1, tol=tol, seed=seed)
        return float(res.values[0]), op.hvps

    def scipy_run(seed, tol):
        op = HessianOperator(obj)
        v0 = op.random(generator=torch.Generator().manual_seed(seed)).double().cpu().numpy()
        val = eigsh(op.to_scipy(), k=1, which="LA", tol=tol, v0=v0)[0][0]
        return float(val), op.hvps

    def pyhessian_run(seed, tol):
        torch.manual_seed(seed)
        counter["n"] = 0
        for p in model.parameters():
            p.grad = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            h = ph.hessian(model, mse, data=(data.x_train, data.y_train),
                           cuda=data.x_train.is_cuda)
            vals, _ = h.eigenvalues(maxIter=2000, tol=tol, top_n=1)
        for p in model.parameters():
            p.grad = None
        return float(vals[0]), counter["n"]

    runners = {"eoslab Lanczos": eoslab_run, "scipy eigsh (same HVP)": scipy_run,
               "PyHessian power it.": pyhessian_run}
    rows = {(name, tol): {"time": [], "hvps": [], "err": []}
            for name, ladder in LADDERS.items() for tol in ladder}
    for rep in range(reps):
        for (name, tol), row in rows.items():  # interleaved, so load drifts hit all alike
            seconds, (value, hvps) = timed(runners[name], rep, tol)
            row["time"].append(seconds)
            row["hvps"].append(hvps)
            row["err"].append(abs(value - ref) / ref)
    ph.hessian_vector_product = original
    summary = {key: {"time": statistics.median(r["time"]), "hvps": statistics.median(r["hvps"]),
                     "err": max(r["err"])} for key, r in rows.items()}
    return {"reference": ref, "rows": summary}


def cheapest(rows: dict, name: str, target: float):
    """The cheapest setting of ``name`` whose worst error is at most ``target``."""
    ok = [(r["time"], tol, r) for (n, tol), r in rows.items() if n == name and r["err"] <= target]
    return min(ok, key=lambda x: x[0])[1:] if ok else (None, None)


def print_cold(title: str, cold: dict, reps: int) -> None:
    print(f"\n## 1. {title}: top eigenvalue from a cold start (reference lambda_max = "
          f"{cold['reference']:.6f}; median time/HVPs, worst error of {reps} repetitions)\n")
    print("| method | tol | time (s) | HVPs | worst rel. error |")
    print("|---|---|---|---|---|")
    for (name, tol), r in cold["rows"].items():
        print(f"| {name} | {tol:g} | {r['time']:.3f} | {r['hvps']:.0f} | {r['err']:.1e} |")
    print("\nEqual accuracy: the cheapest setting of each method whose worst error is <= target\n")
    print("| target rel. error | eoslab s (HVPs) | PyHessian s (HVPs) | PyHessian / eoslab time "
          "| scipy eigsh s (HVPs) | scipy / eoslab time |")
    print("|---|---|---|---|---|---|")
    for target in (1e-2, 1e-3, 1e-4):
        cells = []
        for name in LADDERS:
            tol, r = cheapest(cold["rows"], name, target)
            if r is None:
                cells.append(("not reached", None))
                continue
            cells.append((f"{r['time']:.3f} ({r['hvps']:.0f}, tol {tol:g})", r["time"]))
        (e, et), (s_, st), (p, pt) = cells
        ratio_p = f"{pt / et:.2f}" if pt and et else "-"
        ratio_s = f"{st / et:.2f}" if st and et else "-"
        print(f"| {target:g} | {e} | {p} | {ratio_p} | {s_} | {ratio_s} |")


def warm_comparison(device, tol: float, lr: float = 0.4, steps: int = 300, gap: int = 5,
                    every: int = 10) -> dict:
    data, model = setup(device)
    obj = Objective(model, "mse", data.x_train, data.y_train)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    phases = {"sharpening": [], "edge of stability": []}
    previous = None
    for step in range(steps + 1):
        if step % every == every - gap:
            previous = top_eigen(HessianOperator(obj), 1, tol=tol, seed=step).vectors
        if step % every == 0 and previous is not None:
            op_c, op_w = HessianOperator(obj), HessianOperator(obj)
            tc, cold = timed(partial(top_eigen, op_c, 1, tol=tol, seed=step))
            tw, warm = timed(partial(top_eigen, op_w, 1, tol=tol, init=previous))
            ratio = float(cold.values[0]) * lr / 2
            phase = "sharpening" if ratio < 0.9 else "edge of stability"
            phases[phase].append((cold.hvps, warm.hvps, tc, tw, ratio))
        opt.zero_grad()
        obj(dict(model.named_parameters())).backward()
        opt.step()
    out = {}
    for phase, items in phases.items():
        if items:
            c, w, tc, tw, _ = (list(x) for x in zip(*items))
            out[phase] = {"n": len(items), "cold_hvps": statistics.median(c),
                          "warm_hvps": statistics.median(w), "cold_s": statistics.median(tc),
                          "warm_s": statistics.median(tw),
                          "hvp_ratio": statistics.median(np.array(c) / np.array(w)),
                          "time_ratio": statistics.median(np.array(tc) / np.array(tw))}
    return out


def tracking_overhead(device, steps: int = 200, reps: int = 3) -> dict:
    out = {}
    for every in (0, 20, 10):
        times = []
        for _ in range(reps):
            data, model = setup(device)
            probes = [SharpnessProbe(every=every)] if every else []
            seconds, _ = timed(partial(fit, model, data, "mse",
                                       torch.optim.SGD(model.parameters(), lr=0.1),
                                       steps=steps, record_every=10, probes=probes,
                                       eval_test=False))
            times.append(seconds)
        out[every] = statistics.median(times)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" \
        else args.device
    ph = import_pyhessian()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} thread(s)), device {device}, "
          f"python {platform.python_version()}")
    data, model = setup(device)
    print_cold("digits default at initialisation", cold_comparison(model, data, args.reps, ph),
               args.reps)
    eos_lr, eos_steps = 0.4, 200
    opt = torch.optim.SGD(model.parameters(), lr=eos_lr)
    fit(model, data, "mse", opt, steps=eos_steps, record_every=eos_steps, eval_test=False)
    print_cold(f"after {eos_steps} GD steps at lr {eos_lr} (edge of stability)",
               cold_comparison(model, data, args.reps, ph), args.reps)
    for tol in (1e-2, 1e-3):
        warm = warm_comparison(device, tol)
        print(f"\n## 2. Warm vs cold re-estimate 5 GD steps later (lr 0.4, tol {tol:g}, medians)\n")
        print("| phase | checkpoints | cold HVPs | warm HVPs | HVP ratio | cold s | warm s "
              "| time ratio |")
        print("|---|---|---|---|---|---|---|---|")
        for phase, r in warm.items():
            print(f"| {phase} | {r['n']} | {r['cold_hvps']:.0f} | {r['warm_hvps']:.0f} | "
                  f"{r['hvp_ratio']:.2f} | {r['cold_s']:.3f} | {r['warm_s']:.3f} | "
                  f"{r['time_ratio']:.2f} |")
    over = tracking_overhead(device)
    print("\n## 3. Tracking overhead: fit, 200 GD steps, digits default (median of 3)\n")
    print("| probe | seconds | vs no probe |")
    print("|---|---|---|")
    for every, seconds in over.items():
        label = f"SharpnessProbe(every={every})" if every else "none"
        print(f"| {label} | {seconds:.2f} | {seconds / over[0]:.2f}x |")


if __name__ == "__main__":
    main()
