"""ch14_mode_connectivity.connectivity against exact answers on tiny float64 problems."""

import pytest
import torch

from eoslab.chapters.ch14_mode_connectivity.connectivity import (
    curve_in_plane,
    ensemble_table,
    fge_snapshots,
)
from eoslab.core.data import load_dataset
from eoslab.core.models import build_model
from eoslab.geometry.curves import Curve
from eoslab.geometry.plane import Plane
from eoslab.optimizers.averaging import evaluate_ensemble


def test_bezier_curve_projects_to_the_bezier_of_the_anchors():
    w1 = {"w": torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)}
    w2 = {"w": torch.tensor([4.0, 0.0, 1.0], dtype=torch.float64)}
    curve = Curve(w1, w2, n_bends=1, kind="bezier")
    with torch.no_grad():
        curve.bends[0] = torch.tensor([1.0, 3.0, 1.0], dtype=torch.float64)
    bend = curve.unflatten(curve.bends[0].detach())
    plane = Plane.through(w1, w2, bend)
    ts = [0.0, 0.25, 0.5, 1.0]
    got = torch.tensor(curve_in_plane(curve, plane, ts), dtype=torch.float64)
    a = torch.tensor(plane.anchors, dtype=torch.float64)
    want = torch.stack([(1 - t) ** 2 * a[0] + 2 * t * (1 - t) * a[2] + t ** 2 * a[1]
                        for t in ts])
    assert torch.allclose(got, want, atol=1e-12)
    assert got[2].tolist() == pytest.approx([1.5, 1.5], abs=1e-12)


def test_ensemble_table_matches_a_brute_force_mean_of_softmax():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 4).double()
    x = torch.randn(20, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (20,))
    members = [{k: torch.randn_like(v) for k, v in model.named_parameters()} for _ in range(3)]
    table = ensemble_table(model, members, "ce", x, y)
    for row in table:
        probs = torch.stack([torch.softmax(x @ m["weight"].T + m["bias"], -1)
                             for m in members[:row["k"]]]).mean(0)
        acc = float((probs.argmax(-1) == y).double().mean())
        nll = float(-probs[torch.arange(20), y].log().mean())
        assert row["ensemble_acc"] == pytest.approx(acc)
        assert row["ensemble_loss"] == pytest.approx(nll, rel=1e-10)
        single = evaluate_ensemble(model, [members[row["k"] - 1]], "ce", x, y)
        assert row["single_loss"] == pytest.approx(single["loss"])


def test_fge_snapshots_are_taken_at_the_low_points_of_the_cycle():
    data = load_dataset("digits", n_train=64, loss="ce", device="cpu", dtype="float64")
    model = build_model("fc-relu", data.input_shape, data.n_outputs, width=8, depth=1,
                        seed=0, device="cpu", dtype="float64")
    snaps, run = fge_snapshots(model, data, "ce", 0.2, cycle=8, cycles=3, batch_size=16,
                               low_ratio=0.1)
    assert len(snaps) == 3 and run.status == "finished"
    lrs = {row["step"]: row["lr"] for row in run.history}
    for step in (8, 16):
        assert lrs[step] == pytest.approx(0.02)
    assert lrs[4] == pytest.approx(0.2)
    name = next(iter(snaps[0]))
    assert not torch.equal(snaps[0][name], snaps[1][name])
    with pytest.raises(ValueError, match="cycle=7"):
        fge_snapshots(model, data, "ce", 0.2, cycle=7, cycles=2, batch_size=16)
