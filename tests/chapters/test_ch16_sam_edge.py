"""ch16_sam.sam_edge: the SAM-edge against its defining equation and SAM on a quadratic."""

import math

import pytest
import torch

from eoslab.chapters.ch16_sam.sam_edge import add_sam_edge, sam_edge
from eoslab.optimizers.sam import SAM


@pytest.mark.parametrize("g,lr,rho", [(1.0, 0.5, 0.25), (0.01, 0.1, 0.05), (3.0, 2.0, 1e-6)])
def test_sam_edge_solves_the_stability_equation(g, lr, rho):
    lam = sam_edge(g, lr, rho)
    assert lr * lam * (1 + rho * lam / g) == pytest.approx(2.0, rel=1e-10)
    assert lam < 2 / lr


def test_sam_edge_limits_and_bad_input():
    assert sam_edge(1.0, 0.2, 1e-12) == pytest.approx(10.0, rel=1e-9)
    assert sam_edge(0.0, 0.2, 0.1) == 0.0
    assert sam_edge(0.5, 0.2, 0.1) < sam_edge(1.0, 0.2, 0.1)  # falls with the gradient
    with pytest.raises(ValueError, match="rho=-0.1"):
        sam_edge(1.0, 0.2, -0.1)
    with pytest.raises(ValueError, match="lr=0"):
        sam_edge(1.0, 0, 0.1)


def _grow(factor: float) -> float:
    """|x| after SAM steps on L = (lam x^2 + mu y^2)/2 with lam = factor * SAM-edge, where
    the flat direction y carries the gradient norm (about mu * y) almost unchanged."""
    lr, rho, mu, y0 = 0.1, 0.05, 1e-3, 1000.0
    g = mu * y0
    lam = factor * sam_edge(g, lr, rho)
    w = torch.tensor([1e-6, y0], dtype=torch.float64, requires_grad=True)
    h = torch.tensor([lam, mu], dtype=torch.float64)
    opt = SAM(torch.optim.SGD([w], lr=lr), rho=rho)

    def closure():
        opt.zero_grad()
        loss = 0.5 * (h * w * w).sum()
        loss.backward()
        return loss

    for _ in range(60):
        closure()  # the gradient at w, which SAM.step reuses (as inside eoslab.core.train.fit)
        opt.step(closure)
    return abs(float(w[0].detach())) / 1e-6


def test_sam_on_a_quadratic_is_stable_below_its_edge_and_unstable_above():
    assert _grow(0.9) < 1e-2
    assert _grow(1.1) > 1e2
    assert math.isfinite(_grow(1.0))


def test_add_sam_edge_uses_each_rows_gradient_norm():
    rows = add_sam_edge([{"step": 0, "grad_norm": 1.0}, {"step": 1}], 0.5, 0.25)
    assert rows[0]["sam_edge"] == pytest.approx(sam_edge(1.0, 0.5, 0.25))
    assert "sam_edge" not in rows[1] and rows[1]["gd_edge"] == 4.0
