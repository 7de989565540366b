"""Plane and path chart builders: specs checked through ``to_dict()``."""

import math

import pytest

from eoslab.ui.plane_plots import clip_loss, path_data, path_layout, plane_data, plane_layout
from eoslab.ui.plots import with_datasets


def test_plane_data_cells_tile_the_grid_and_paths_keep_their_order():
    data = plane_data([0.0, 1.0, 2.0], [0.0, 0.5], [[1, 2], [3, 4], [5, float("nan")]],
                      {"curve": [(0.0, 0.0), (1.0, 0.4), (2.0, 0.0)]},
                      [{"x": 0.0, "y": 0.0, "label": "w1"}], ceiling=4.0)
    grid = data["plane_grid"]
    assert len(grid) == 6
    assert grid[0]["x1"] == pytest.approx(-0.5) and grid[0]["x2"] == pytest.approx(0.5)
    assert grid[0]["y1"] == pytest.approx(-0.25) and grid[0]["y2"] == pytest.approx(0.25)
    assert [g["loss"] for g in grid] == [1, 2, 3, 4, 4, 4]  # capped, NaN -> ceiling
    assert [p["order"] for p in data["plane_paths"]] == [0, 1, 2]
    with pytest.raises(ValueError, match="expected"):
        plane_data([0.0, 1.0], [0.0], [[1.0, 2.0]])


def test_layouts_read_named_datasets():
    spec = with_datasets(plane_layout(), plane_data([0.0, 1.0], [0.0, 1.0],
                                                    [[1, 2], [3, 4]])).to_dict()
    assert {"plane_grid", "plane_paths", "plane_points"} <= set(spec["datasets"])
    names = {layer["data"]["name"] for layer in spec["layer"]}
    assert names == {"plane_grid", "plane_paths", "plane_points"}
    spec = with_datasets(path_layout(), path_data({"a": {"t": [0, 1], "loss": [1, 0]}}))
    assert spec.to_dict()["datasets"]["paths"][1]["loss"] == pytest.approx(1e-6)


def test_clip_loss_floors_and_caps():
    out = clip_loss([0.0, 10.0, math.inf], floor=0.5)
    assert out.tolist() == [0.5, 10.0, 10.0]
