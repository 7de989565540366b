"""Chapter 18's phenomena on its quick preset, through the app the chapter shows: full-batch
Adam's preconditioned sharpness hovers at 38/eta (while the raw sharpness stays far below
GD's 2/eta), and on the (lr, wd) grid a weight decay that wipes out Adam + L2 leaves AdamW
training well: coupled L2 is throttled by Adam's normaliser, decoupled decay is not."""

import numpy as np

from eoslab.apps.adamw import AdamWApp, precond_band


def test_adam_edge_of_stability_and_l2_vs_decoupled_decay():
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

    _lrs, wds, adam = app.grid.table("adam", "test_acc")
    _, _, adamw = app.grid.table("adamw", "test_acc")
    assert adam.shape == (len(app.preset["grid_lrs"]), len(app.preset["grid_wds"]))
    assert not np.isnan(adam).any() and not np.isnan(adamw).any()
    np.testing.assert_allclose(adam[:, 0], adamw[:, 0])        # wd = 0: the same optimiser
    big = int(np.argmax(wds))
    assert (adamw[:, big] > adam[:, big] + 0.3).all()          # large wd: L2 collapses
    assert (adamw[:, 1:] >= adam[:, 1:] - 0.02).all()          # decoupled never worse here
    assert "best weight decay" in app.controls.status.value
