"""The plane through three weight vectors (Garipov et al. 2018), projections and PCA."""

import pytest
import torch

from eoslab.core.models import build_model
from eoslab.curvature.objective import Objective, trainable_params
from eoslab.geometry import directions as D
from eoslab.geometry.plane import Plane, pca_directions, project


def _three(device):
    nets = [build_model("fc-tanh", (4,), 2, width=5, depth=1, seed=s, dtype="float64",
                        device=device) for s in (0, 1, 2)]
    return nets[0], [trainable_params(m) for m in nets]


def test_basis_orthonormal_and_anchor_coordinates(device):
    _, (w1, w2, w3) = _three(device)
    plane = Plane.through(w1, w2, w3)
    assert float(D.norm(plane.u)) == pytest.approx(1.0, abs=1e-12)
    assert float(D.norm(plane.v)) == pytest.approx(1.0, abs=1e-12)
    assert float(D.dot(plane.u, plane.v)) == pytest.approx(0.0, abs=1e-12)
    assert plane.coords(w1) == pytest.approx((0.0, 0.0), abs=1e-12)
    assert plane.coords(w2) == pytest.approx((float(D.norm(D.difference(w1, w2))), 0.0),
                                             abs=1e-10)
    x3, y3 = plane.coords(w3)
    assert y3 > 0 and plane.anchors[2] == pytest.approx((x3, y3))
    for w in (w1, w2, w3):  # the points lie in the plane and are recovered from (x, y)
        assert plane.distance(w) < 1e-10
        back = plane.point(*plane.coords(w))
        for k in w:
            torch.testing.assert_close(back[k], w[k])


def test_grid_loss_at_anchors_equals_model_loss(device):
    model, (w1, w2, w3) = _three(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(25, 4, generator=gen, dtype=torch.float64).to(device)
    y = torch.randn(25, 2, generator=gen, dtype=torch.float64).to(device)
    obj = Objective(model, "mse", x, y)
    plane = Plane.through(w1, w2, w3)
    xs = [a[0] for a in plane.anchors]
    ys = [a[1] for a in plane.anchors]
    out = plane.evaluate(obj, xs, ys)
    for i, w in enumerate((w1, w2, w3)):
        assert out["loss"][i][i] == pytest.approx(float(obj(w)), rel=1e-9)
    gx, gy = plane.grid(n=7)
    assert len(gx) == 7 and gx[0] < 0 < plane.anchors[1][0] < gx[-1] and gy[-1] > y3(plane)


def y3(plane):
    return plane.anchors[2][1]


def test_projection_of_off_plane_point():
    def w(*a):
        return {"w": torch.tensor(a, dtype=torch.float64)}

    plane = Plane.through(w(0, 0, 0), w(3, 0, 0), w(1, 2, 0))
    assert plane.coords(w(1, 1, 5)) == pytest.approx((1.0, 1.0))
    assert plane.distance(w(1, 1, 5)) == pytest.approx(5.0)
    traj = [w(t, t, 1) for t in range(4)]
    torch.testing.assert_close(plane.project(traj), torch.tensor(
        [[t, t] for t in range(4)], dtype=torch.float64))


def test_pca_of_trajectory_recovers_its_plane():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(30, generator=gen, dtype=torch.float64), torch.randn(
        30, generator=gen, dtype=torch.float64)
    end = torch.randn(30, generator=gen, dtype=torch.float64)
    coef = torch.randn(12, 2, generator=gen, dtype=torch.float64)
    traj = [{"w": end + c[0] * a + c[1] * b} for c in coef] + [{"w": end}]
    dirs, ratio = pca_directions(traj, k=2)
    assert float(ratio.sum()) == pytest.approx(1.0)
    assert ratio[0] >= ratio[1]
    coords = project(traj, traj[-1], dirs)
    for w, c in zip(traj, coords):  # the trajectory is exactly reconstructed
        rebuilt = traj[-1]["w"] + c[0] * dirs[0]["w"] + c[1] * dirs[1]["w"]
        torch.testing.assert_close(rebuilt, w["w"])


def test_bad_inputs():
    def w(*a):
        return {"w": torch.tensor(a, dtype=torch.float64)}

    with pytest.raises(ValueError, match="collinear"):
        Plane.through(w(0, 0), w(1, 1), w(3, 3))
    with pytest.raises(ValueError, match="w2 equals w1"):
        Plane.through(w(1, 0), w(1, 0), w(3, 3))
    with pytest.raises(ValueError, match="mismatched architectures"):
        Plane.through(w(0, 0), w(1, 1), w(3, 3, 3))
    with pytest.raises(ValueError, match="extra parameters"):
        Plane.through(w(0, 0), {"v": torch.ones(2)}, w(3, 3))
    plane = Plane.through(w(0, 0), w(1, 0), w(0, 1))
    with pytest.raises(ValueError, match="empty"):
        plane.project([])
    with pytest.raises(ValueError, match="n=1"):
        plane.grid(n=1)
    with pytest.raises(ValueError, match="k=3"):
        pca_directions([w(0, 0), w(1, 0), w(0, 1)], k=3)
