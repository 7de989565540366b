"""Chapter 06's phenomenon on its quick preset, through the chapter's experiment: on a
landscape with sharp local minima and a wide global one, GD with a large step size reaches
the global minimum from every start, while small-step GD stays in a local minimum at every
noise level; on the digits net the large step size ends flatter at the same train loss."""

from eoslab.chapters.ch06_large_step_sizes.app import LargeStepSizesApp
from eoslab.chapters.ch06_large_step_sizes.experiment import (
    TOTAL_WORK,
    experiment,
    matched_sharpness,
)
from eoslab.chapters.presets import get_preset


def test_large_steps_reach_the_global_minimum_small_noisy_steps_do_not():
    preset = get_preset("06", "quick")
    seen = []
    result = experiment(preset, {"lr": preset.lr, "noise": preset.noise},
                        emit=lambda datasets, done: seen.append(done))
    assert result["status"] == "finished"
    assert seen and seen[-1] <= TOTAL_WORK
    edge = 2 / result["ring_sharpness"]  # GD can rest in a ring only below this step size
    grid = result["grid"]
    small = [r for r in grid if r["lr"] < edge]
    large = [r for r in grid if 4 * edge < r["lr"] < 1.5]
    assert len({r["lr"] for r in small}) >= 2 and len({r["noise"] for r in small}) >= 3
    assert max(r["reached"] for r in small) <= 0.1, small  # noise of any size does not help
    assert min(r["reached"] for r in large if r["noise"] == 0) >= 0.9, large
    assert sum(r["reached"] for r in large) / len(large) >= 0.9
    # the small network: at the train loss every step size reaches, the largest one sits
    # in a flatter region, at most a little above its own 2/eta
    match = matched_sharpness(result["net"])
    lo, hi = min(match["sharpness"]), max(match["sharpness"])
    assert match["sharpness"][hi] < 0.85 * match["sharpness"][lo], match
    assert match["sharpness"][hi] < 1.2 * 2 / hi
    assert set(result["datasets"]) == {"grid", "paths", "rings", "profile", "net"}
    app = LargeStepSizesApp("quick", store=False, chart_mode="svg", auto_run=False)
    assert "reaches it in at least" in app.describe(result)


def test_past_two_over_mu_every_run_diverges():
    preset = get_preset("06", "quick")
    result = experiment(preset, {"lr": LargeStepSizesApp.LR_RANGE[1], "noise": preset.noise})
    assert result["status"] == "diverged"
    assert result["diverged"]["stage"] == "GD on the valleys" and result["diverged"]["step"] > 0
