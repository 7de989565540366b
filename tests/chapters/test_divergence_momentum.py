"""A diverged heavy-ball run's status sentence names its edge (2+2β)/η with β's number."""

from types import SimpleNamespace

import pytest

from eoslab.chapters.ch01_quadratic_stability.experiment import experiment as quadratic
from eoslab.chapters.ch14_mode_connectivity import connectivity
from eoslab.chapters.ch15_swa import swa_geometry
from eoslab.chapters.presets import get_preset
from eoslab.ui.base import divergence_text


def _edge_words(beta: float, lr: float) -> str:
    return f"(2+2β)/η = {(2 + 2 * beta) / lr:.3g}"


def test_ch01_heavy_ball_divergence_names_momentum():
    preset = get_preset("01", "quick")
    result = quadratic(preset, {"lr": 2.9, "momentum": 0.5})
    assert result["status"] == "diverged" and result["diverged"]["momentum"] == 0.5
    assert _edge_words(0.5, 2.9) in divergence_text(result)
    plain = quadratic(preset, {"lr": 2.9, "momentum": 0.0})
    assert "momentum" not in plain["diverged"] and "2/η = " in divergence_text(plain)


@pytest.mark.parametrize("beta", [0.9, 0.0])
def test_ch14_divergence_names_the_sgd_momentum(beta):
    run = SimpleNamespace(diverged_at=(12, 3e5))
    result = connectivity._diverged(run, "SGD towards w1", 4.0, beta)
    text = divergence_text(result)
    if beta:
        assert result["diverged"]["momentum"] == beta and _edge_words(beta, 4.0) in text
    else:
        assert "momentum" not in result["diverged"] and "(2/η = 0.5)" in text


def test_ch15_divergence_names_the_sgd_momentum(monkeypatch):
    preset = get_preset("15", "quick")
    beta = preset.sgd.momentum
    assert beta > 0
    monkeypatch.setattr(swa_geometry, "fit", lambda *a, **k: SimpleNamespace(
        status="diverged", diverged_at=(7, 1e9)))
    result = swa_geometry.swa_experiment(preset, 3.0)
    assert result["diverged"]["momentum"] == beta
    assert _edge_words(beta, 3.0) in divergence_text(result)
