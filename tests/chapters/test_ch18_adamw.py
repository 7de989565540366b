"""Chapter 18's phenomena on its quick preset, through the app the chapter shows: full-batch
Adam's preconditioned sharpness hovers at 38/eta (while the raw sharpness stays far below
GD's 2/eta), and on the (lr, lambda) grid (scale-invariant net, cosine schedule, the paper's
decay convention) the best L2 coefficient of Adam + L2 moves with the learning rate while the
best decoupled lambda of AdamW stays put (Loshchilov & Hutter 2019, Figure 2)."""

import math

import numpy as np

from eoslab.chapters.ch18_adamw.app import AdamWApp, grid_base, precond_band
from eoslab.chapters.ch18_adamw.grid import best_per_lr, optimum_spread, run_grid
from eoslab.chapters.presets import get_preset


def _shift(grid, optimizer):
    """log10(best lambda at the smallest lr / best lambda at the largest lr)."""
    best = best_per_lr(grid, optimizer, "test_loss")
    return math.log10(best[0][1] / best[-1][1])


def _assert_decoupled_optimum_stays(grid):
    adam, adamw = _shift(grid, "adam"), _shift(grid, "adamw")
    assert adam >= 1.5             # L2: a larger lr wants a (much) smaller lambda: a diagonal
    assert abs(adamw) < 0.6        # decoupled: at most one half-decade column apart
    assert adam - abs(adamw) >= 1.0
    assert optimum_spread(grid, "adamw") <= 1 < optimum_spread(grid, "adam")


def test_adam_edge_of_stability_and_the_decoupled_optimum():
    app = AdamWApp("quick", store=False, auto_run=False)
    app.run(wait=True)
    lr = app.lr.value
    res = app.result
    assert res.status == "finished"
    low, median, high = precond_band(res.history, lr, 0.9)
    assert 0.85 < median < 1.15 and low > 0.7 and high < 1.3
    raw = [r["sharpness"] for r in res.history if r.get("sharpness") is not None]
    assert max(raw) < 0.2 * (2 / lr)  # GD's edge says nothing about Adam
    assert "preconditioned sharpness" in app.controls.status.value

    p = app.preset
    for opt in ("adam", "adamw"):
        table = app.grid.table(opt, "test_loss")[2]
        assert table.shape == (len(p["grid_lrs"]), len(p["grid_wds"][opt]))
        assert not np.isnan(table).any()
    _assert_decoupled_optimum_stays(app.grid)
    assert "decade(s) of lambda" in app.controls.status.value


def test_the_contrast_holds_for_other_seeds():
    p = get_preset("18", "quick")
    for seed in (1, 2):  # each seed on its own: no averaging hides a failing one
        grid = run_grid(grid_base(p), p["grid_lrs"], p["grid_wds"], decay=p["grid_decay"],
                        seeds=(seed,), store=False)
        _assert_decoupled_optimum_stays(grid)
