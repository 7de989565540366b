"""Chapter 03's phenomenon on the quick preset: sharpening past 2/eta, blow-up along u,
self-stabilisation back to 2/eta, and GD staying near the constrained trajectory
(Damian, Nichani, Lee 2023)."""

import pytest

from eoslab.chapters.ch03_self_stabilization.experiment import experiment
from eoslab.chapters.presets import get_preset


@pytest.mark.slow  # a projection (Lanczos + third derivative) per step
def test_the_four_phase_cycle_and_the_constrained_trajectory():
    preset = get_preset("03", "quick")
    lr = preset.lr
    result = experiment(preset, {"lr": lr})
    assert result["status"] == "finished"
    s = result["summary"]
    assert s is not None, "phase 1: progressive sharpening should carry S past 2/eta"
    # phase 2: once S > 2/eta, the displacement along u blows up by orders of magnitude
    assert s["peak_y"] > 0.1 * (2 / lr) and s["max_abs_x"] > 1e3 * max(s["x_at_entry"], 1e-9)
    assert s["blowups"] >= 1
    # phase 3-4: the cubic term brings S back to (below) the edge after the overshoot
    assert s["return_y"] < 0.15 * s["peak_y"], s
    # the constrained trajectory respects S <= 2/eta (projection tolerance) ...
    assert s["dagger_max_ratio"] <= 1.0 + 2 * preset.projection.rtol, s
    # ... and GD stays close to it compared with how far it travels
    assert s["max_distance"] < 0.25 * s["travel"], s
