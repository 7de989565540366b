"""The (lr, wd) grid: its cells are exactly the runs of their configs, stored cells come
back without training, and the optimum statistics read known tables correctly."""

import numpy as np
import pytest

from eoslab.chapters.ch18_adamw.grid import (
    GridResult,
    best_per_lr,
    grid_cells,
    grid_configs,
    optimum_spread,
    run_grid,
)
from eoslab.core.config import TrainConfig
from eoslab.core.experiment import run
from eoslab.core.store import RunStore

BASE = TrainConfig(dataset="moons", model="fc-relu", width=8, loss="cross-entropy", steps=12,
                   record_every=6, dtype="float64")


def test_cells_are_the_runs_of_their_configs(tmp_path):
    store = RunStore(tmp_path / "s")
    grid = run_grid(BASE, [0.01, 0.05], [0.0, 0.5], store=store)
    assert len(grid.cells) == 8
    for cell, config in zip(grid.cells, grid_configs(BASE, [0.01, 0.05], [0.0, 0.5])):
        assert (cell["optimizer"], cell["lr"], cell["weight_decay"]) == (
            config.optimizer, config.lr, config.weight_decay)
        alone = run(config, store=False).history[-1]
        assert cell["test_loss"] == pytest.approx(alone["test_loss"], rel=1e-12)
        assert cell["acc"] == pytest.approx(alone["acc"])
    # decay changes the result, and L2 (adam) differs from decoupled (adamw)
    _lrs, _wds, adam = grid.table("adam")
    _, _, adamw = grid.table("adamw")
    assert adam.shape == (2, 2) and not np.allclose(adam[:, 0], adam[:, 1])
    assert np.allclose(adam[:, 0], adamw[:, 0]) and not np.allclose(adam[:, 1], adamw[:, 1])
    seen = []
    again = run_grid(BASE, [0.01, 0.05], [0.0, 0.5], store=store,
                     on_cell=lambda c, i, n: seen.append((i, n)))
    assert all(c["from_store"] for c in again.cells) and seen[-1] == (7, 8)
    assert [c["test_loss"] for c in again.cells] == [c["test_loss"] for c in grid.cells]


def test_optimum_statistics_on_known_tables():
    def cells(opt, f):
        return [{"optimizer": opt, "lr": lr, "weight_decay": wd, "status": "finished",
                 "test_loss": f(lr, wd)} for lr in (0.01, 0.1, 1.0) for wd in (0.01, 0.1, 1.0)]

    diagonal = cells("l2", lambda lr, wd: abs(np.log10(wd) - np.log10(lr)))  # best wd = lr
    separable = cells("dec", lambda lr, wd: abs(np.log10(wd) + 1) + lr)      # best wd = 0.1
    grid = GridResult(diagonal + separable)
    assert best_per_lr(grid, "l2") == [(0.01, 0.01), (0.1, 0.1), (1.0, 1.0)]
    assert optimum_spread(grid, "l2") == 2 and optimum_spread(grid, "dec") == 0
    assert [wd for _, wd in best_per_lr(grid, "dec")] == [0.1, 0.1, 0.1]
    grid.cells[0]["status"] = "diverged"
    assert np.isnan(grid.table("l2")[2][0, 0])


def test_bad_input_names_the_value():
    with pytest.raises(ValueError, match="weight_decay=-1"):
        grid_configs(BASE, [0.1], [-1])
    with pytest.raises(ValueError, match="lrs is empty"):
        grid_configs(BASE, [], [0.1])
    with pytest.raises(ValueError, match="lr=0"):
        grid_configs(BASE, [0], [0.1])


def test_paper_convention_shrinks_by_lambda_per_step_whatever_the_lr():
    # AdamW's torch weight_decay is lambda / lr, so its shrink lr_t * wd is eta_t * lambda;
    # L2 (adam) is the same in both conventions; per-optimiser lambda lists; seeds outer.
    cells = grid_cells(BASE, [0.01, 0.1], {"adam": [0.5], "adamw": [0.2]}, decay="paper",
                       seeds=(3, 4))
    got = [(c["seed"], c["optimizer"], c["lr"], c["weight_decay"], cfg.weight_decay,
            cfg.model_seed, cfg.seed) for c, cfg in cells]
    assert got == [(s, o, lr, lam, tw, s, s) for s in (3, 4)
                   for o, lam in (("adam", 0.5), ("adamw", 0.2)) for lr in (0.01, 0.1)
                   for tw in [lam / lr if o == "adamw" else lam]]
    # one exact AdamW step (float64, moons): w1 = w0 - lr * adam_dir - lambda * w0
    import torch
    cfg = [c for cell, c in cells if cell["optimizer"] == "adamw"][1].replace(
        steps=1, record_every=1, dtype="float64")
    model = torch.nn.Linear(3, 1).double()
    w0 = model.weight.detach().clone()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    model.weight.grad, model.bias.grad = torch.ones_like(w0), torch.zeros(1, dtype=torch.float64)
    opt.step()
    expected = w0 - 0.1 * torch.ones_like(w0) / (1 + 1e-8) - 0.2 * w0
    torch.testing.assert_close(model.weight.detach(), expected)


def test_table_averages_the_seeds():
    cells = [{"optimizer": "a", "lr": 0.1, "weight_decay": w, "seed": s, "status": st,
              "test_loss": v} for w, s, st, v in [(0.1, 0, "finished", 1.0),
                                                  (0.1, 1, "finished", 2.0),
                                                  (1.0, 0, "finished", 4.0),
                                                  (1.0, 1, "diverged", None)]]
    _, wds, values = GridResult(cells).table("a")
    assert wds == [0.1, 1.0] and values.tolist() == [[1.5, 4.0]]
    g = GridResult([{**c, "lr": lr, "weight_decay": w, "test_loss": abs(np.log10(w / lr))}
                    for c in cells[:1] for lr in (0.01, 1.0) for w in (0.01, 0.1, 1.0)])
    assert optimum_spread(g, "a", units="decades") == pytest.approx(2.0)
    assert optimum_spread(g, "a") == 2


def test_bad_convention_seed_or_units_names_the_value():
    with pytest.raises(ValueError, match="decay='tf'"):
        grid_cells(BASE, [0.1], [0.1], decay="tf")
    with pytest.raises(ValueError, match="seed=-1"):
        grid_cells(BASE, [0.1], [0.1], seeds=(-1,))
    with pytest.raises(ValueError, match=r"wds\['adamw'\] is empty"):
        grid_cells(BASE, [0.1], {"adam": [0.1], "adamw": []})
    with pytest.raises(ValueError, match="units='cols'"):
        optimum_spread(GridResult([]), "a", units="cols")
