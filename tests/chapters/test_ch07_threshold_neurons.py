"""Chapter 07's phenomenon on its quick preset, through the chapter's experiment: run for the
same time eta*T, GD leaves the ReLU bias at about zero below the edge of stability
eta* = 2/lambda_0 and makes it clearly negative (a threshold neuron) above it, with a kink
at eta*; a step size so large that every unit switches off is reported as a divergence."""

import itertools
import math

import numpy as np

from eoslab.chapters.ch07_threshold_neurons.app import ThresholdNeuronsApp
from eoslab.chapters.ch07_threshold_neurons.experiment import TOTAL_WORK, experiment
from eoslab.chapters.presets import get_preset


def _mean_bias(final, ratio):
    return np.mean([r["bias"] for r in final if math.isclose(r["ratio"], ratio)])


def test_the_bias_turns_negative_only_past_the_edge_of_stability():
    preset = get_preset("07", "quick")
    seen = []
    result = experiment(preset, {"lr": preset.lr, "time": preset.time},
                        emit=lambda datasets, done: seen.append(done))
    assert result["status"] == "finished" and seen[-1] <= TOTAL_WORK
    # the measured edge agrees with the curvature d/(4 pi) of the even direction
    assert abs(result["eta_star"] / result["theory_eta_star"] - 1) < 0.2
    final = result["final"]
    ratios = sorted({r["ratio"] for r in final})
    below = [r for r in ratios if r < 0.9]
    above = [r for r in ratios if r >= 2.0]
    assert len(below) >= 3 and len(above) >= 2
    for r in below:  # no threshold neuron below the edge, at any init
        assert all(abs(row["bias"]) < 0.1 for row in final if row["ratio"] == r)
    for r in above:  # every init learns one above it
        assert all(row["bias"] < -0.3 for row in final if row["ratio"] == r)
    # a phase transition, not a gradual drift: the bias is flat below eta* and steep above
    means = {r: _mean_bias(final, r) for r in ratios}
    slope_below = abs(means[below[-1]] - means[below[0]]) / (below[-1] - below[0])
    slope_above = abs(means[above[-1]] - means[ratios[-4]]) / (above[-1] - ratios[-4])
    assert slope_above > 8 * slope_below, means
    assert all(means[a] >= means[b] for a, b in itertools.pairwise(ratios[4:]))
    # the threshold neuron denoises: the best test accuracy is found past the edge and
    # beats every step size below it
    acc = {r: np.mean([row["test_acc"] for row in final if row["ratio"] == r]) for r in ratios}
    best = max(acc, key=acc.get)
    assert best > 1.2 and acc[best] > max(acc[r] for r in below) + 0.02, acc
    app = ThresholdNeuronsApp("quick", store=False, chart_mode="svg", auto_run=False)
    assert "threshold neuron" in app.describe(result)


def test_a_huge_step_size_kills_the_unit():
    preset = get_preset("07", "quick")
    app = ThresholdNeuronsApp("quick", store=False, chart_mode="svg", auto_run=False)
    top = app.slider_range("lr", preset)[1]  # 5 eta*: the slider's largest step size
    assert app.sliders["lr"].max == top
    result = experiment(preset, {"lr": top, "time": preset.time})
    assert result["status"] == "diverged"
    assert result["diverged"]["stage"].startswith("the ReLU layer")
    assert result["diverged"]["lr"] == top
    assert result["datasets"]["final"] and result["datasets"]["traj"]  # the other panels stay


def test_the_edge_is_remeasured_and_dead_units_are_said():
    """The marked edge is 2/lambda_0 as the experiment measures it (within 1e-6) and within
    20 % of the paper's 8 pi/d; a dead network (loss flat at log 2, output 0) is reported as
    "not training", not as a run that trained."""
    preset = get_preset("07", "quick")
    result = experiment(preset, {"lr": 4.0 * preset.lr_edge, "time": preset.time})
    assert abs(preset.lr_edge / result["eta_star"] - 1) < 1e-6
    assert abs(preset.lr_edge / result["theory_eta_star"] - 1) < 0.2
    assert result["status"] == "finished" and result["state"] == "not-training", result["state"]
    app = ThresholdNeuronsApp("quick", store=False, chart_mode="svg", auto_run=False)
    assert "not training (dead units" in app.describe(result)
    alive = experiment(preset, {"lr": 0.5 * preset.lr_edge, "time": preset.time})
    assert alive["state"] != "not-training"
