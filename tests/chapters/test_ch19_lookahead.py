"""Chapter 19's phenomenon on its quick preset, through the app the chapter shows:
Lookahead(alpha=0.5, k=5) converges at step sizes where GD alone diverges, up to the derived
threshold and not beyond, and its slow weights sit at a lower noise floor than SGD alone."""

import numpy as np

from eoslab.chapters.ch19_lookahead.app import LookaheadApp
from eoslab.optimizers.lookahead import lookahead_threshold


def test_lookahead_is_stable_between_2_over_lambda_and_its_threshold():
    app = LookaheadApp("quick", chart_mode="svg")
    lam, alpha, k = app.quadratic.lambda_max, app.alpha.value, app.k.value
    edge = lookahead_threshold(lam, alpha, k)
    assert edge > 2 / lam
    for lr in np.linspace(2 / lam + 0.02, edge - 0.02, 5):
        app.set(lr=float(lr))
        inner = app.paths.inner_loss
        assert inner[-1] > inner[0], lr  # GD alone grows (blows up if the run is long enough)
        assert app.paths.lookahead_diverged is None, lr
        assert app.paths.slow_loss[-1] < 1e-2 * app.paths.slow_loss[0], lr
    app.set(lr=edge + 0.1)
    assert app.paths.lookahead_diverged is not None
    assert "diverged" in app.status.value
    app.set(lr=1.0)  # the app keeps working after a divergence
    assert app.paths.inner_diverged is None and "converges" in app.status.value


def test_slow_weights_have_a_lower_noise_floor_than_sgd():
    app = LookaheadApp("quick", chart_mode="svg")
    app.measure_noise_floors(wait=True)
    assert app.floors["slow"] < 0.6 * app.floors["inner"]
    assert "ratio" in app.floor_text.value
