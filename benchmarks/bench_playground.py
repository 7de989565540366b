"""How much does the playground cost on top of training, and how fast does its chart answer?

1. **Run overhead**: the playground's run of the digits default (fc-tanh 200x2, MSE, GD,
   500 steps, sharpness every 20 steps), trained in the calling thread with its live chart,
   parameter snapshots and run list, against :func:`eoslab.run` of the same
   :class:`~eoslab.core.config.TrainConfig` without the store (target: ratio <= 1.15).
   The two are interleaved (``--reps`` each) after one warm-up run of each; the ratio is
   of the medians.
2. **Selection-to-chart latency** while a run trains in the background (target: median
   <= 150 ms): the run list's selection is changed from Python, as the widget's front end
   does, and the time is taken from the change to the chart's datasets being replaced in
   the kernel (``LiveChart.updates`` incremented), with two finished runs and the running
   one in the list.

Run: ``OMP_NUM_THREADS=1 python benchmarks/bench_playground.py [--steps 500] [--reps 2]
[--moves 30]``. Figures go to stdout; benchmarks/bench_playground.md records them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import eoslab  # noqa: E402 - after the sys.path line
from eoslab.ui.playground import Playground  # noqa: E402


def _playground_run(steps: int) -> tuple[float, object]:
    app = Playground(store=False, chart_mode="jupyter")
    app.set(steps=steps, sharpness_every=20)
    start = time.perf_counter()
    app.run(wait=True)
    seconds = time.perf_counter() - start
    assert app.current.status == "finished", app.controls.status.value
    return seconds, app.config()


def _plain_run(config) -> float:
    start = time.perf_counter()
    run = eoslab.run(config, store=False)
    assert run.status == "finished"
    return time.perf_counter() - start


def overhead(steps: int, reps: int) -> dict:
    _, config = _playground_run(20)  # warm-up: data, imports, first allocations
    _plain_run(config.replace(steps=20))
    app_times, plain_times = [], []
    for _ in range(reps):
        seconds, config = _playground_run(steps)
        app_times.append(seconds)
        plain_times.append(_plain_run(config))
    ratio = statistics.median(app_times) / statistics.median(plain_times)
    return {"playground_s": app_times, "eoslab_run_s": plain_times, "ratio": ratio}


def latency(moves: int) -> dict:
    app = Playground(store=False, chart_mode="jupyter")
    app.set(n_train=300, width=64, steps=40, sharpness_every=20)
    app.run(wait=True)
    app.set(lr=0.05)
    app.run(wait=True)
    app.set(steps=100000, lr=0.02, sharpness_every=20)
    app.run()
    keys = [e.key for e in app.runs.entries]
    while not app.current.history:
        time.sleep(0.05)
    times = []
    for i in range(moves):
        chosen = (keys[i % 2], keys[-1]) if i % 3 else tuple(keys)
        if chosen == tuple(app.view.runs.value):
            chosen = (keys[-1],)
        before = app.chart.updates
        start = time.perf_counter()
        app.view.runs.value = chosen
        assert app.chart.updates > before, "the chart was not updated"
        times.append(time.perf_counter() - start)
        time.sleep(0.1)
    app.stop()
    app.wait(60)
    rows = len(app.datasets["history"])
    return {"median_ms": 1000 * statistics.median(times), "max_ms": 1000 * max(times),
            "moves": moves, "rows_drawn": rows}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--moves", type=int, default=30)
    args = parser.parse_args(argv)
    cost = overhead(args.steps, args.reps)
    print(f"run overhead ({args.steps} steps, sharpness every 20): playground "
          f"{[round(s, 2) for s in cost['playground_s']]} s, eoslab.run "
          f"{[round(s, 2) for s in cost['eoslab_run_s']]} s, ratio of medians "
          f"{cost['ratio']:.3f} (target <= 1.15)")
    lat = latency(args.moves)
    print(f"selection -> chart update while training: median {lat['median_ms']:.1f} ms, "
          f"max {lat['max_ms']:.1f} ms over {lat['moves']} changes, {lat['rows_drawn']} "
          "history rows drawn (target: median <= 150 ms)")


if __name__ == "__main__":
    main()
