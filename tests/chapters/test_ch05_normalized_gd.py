"""Chapter 05's phenomenon on the quick preset: normalised GD reaches the edge of its
effective step size and then *lowers* the sharpness (Arora, Li, Panigrahi 2022)."""

from eoslab.chapters.ch05_normalized_gd.experiment import experiment
from eoslab.chapters.presets import get_preset


def test_ngd_sits_at_the_effective_edge_and_the_sharpness_falls_from_its_peak():
    preset = get_preset("05", "quick")
    result = experiment(preset, {"lr": preset.lr, "sqrt_lr": preset.sqrt_lr})
    assert result["status"] == "finished"
    summary = result["runs"]["ngd"]["summary"]
    # the peak is reached well before the end, then the sharpness goes down ...
    assert summary["peak_step"] <= 0.6 * preset.steps
    assert summary["ratio"] < 0.9, summary
    # ... while the effective step size keeps it at the edge: eta_eff * S / 2 near 1
    assert 0.9 <= summary["edge_median"] <= 1.25, summary
    # and the loss L kept going down
    losses = [r["loss"] for r in result["datasets"]["history"] if r["loss"] is not None]
    assert losses[-1] < 0.1 * losses[0]
