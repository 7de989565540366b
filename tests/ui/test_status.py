"""The status vocabulary (eoslab.ui.status) and the edge marker (eoslab.ui.edge)."""

import math

import pytest

from eoslab.ui.edge import lr_range_around_edge
from eoslab.ui.status import classify_losses, format_value, phrase, result_state, state_class


def test_loss_series_are_classified_with_their_stated_tolerances():
    assert classify_losses([0.7] * 20) == "not-training"
    assert classify_losses([1.0 / (t + 1) ** 3 for t in range(40)]) == "converged"
    assert classify_losses([1.0, 0.5, 0.3, 0.2, 0.15, 0.12, 0.1, 0.09, 0.08]) == "training"
    assert classify_losses([3.0, 1.0] * 10) == "oscillating"
    assert classify_losses([1.0, 2.0, 1e301]) == "diverged"
    chaos, x = [], 0.3
    for _ in range(60):  # the logistic map at r = 3.9: bounded, no short period
        x = 3.9 * x * (1 - x)
        chaos.append(1 + x)
    assert classify_losses(chaos) == "chaotic"
    with pytest.raises(ValueError, match="losses is empty"):
        classify_losses([])


def test_the_state_of_a_result_is_diverged_exactly_when_its_status_is():
    assert result_state({"status": "diverged", "state": "converged"}) == "diverged"
    assert result_state({"status": "finished", "state": "diverged"}) == "finished"
    assert result_state({"status": "stopped"}) == "stopped"
    # a word that is not a state never breaks a status line: it reads "finished"
    assert result_state({"status": "finished", "state": "fine"}) == "finished"
    assert result_state({"status": "finished", "state": {"state": "periodic"}}) == "oscillating"
    with pytest.raises(ValueError, match="not allowed"):
        state_class("fine")


def test_numbers_and_phrases():
    assert format_value(1e308) == "> 1e300 (overflow)" and format_value(math.inf) != "inf"
    assert phrase("not-training", "dead units") == "not training (dead units)"
    assert lr_range_around_edge(2.0, 0.025, 1.5) == (0.05, 3.0)
    with pytest.raises(ValueError, match="below"):
        lr_range_around_edge(1.0, 3.0, 1.5)  # the span's ends swapped
    with pytest.raises(ValueError, match="below"):
        lr_range_around_edge(1.0, 0.0, 3.0)
