"""Grid axes and files: the syntax, and bad grids failing before any work, naming the value."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eoslab.core.config import TrainConfig
from eoslab.core.grid_spec import build_grid, load_grid_file, parse_axis


def test_axis_syntax():
    assert parse_axis("lr=0.01,0.02,0.04") == ("lr", [0.01, 0.02, 0.04])
    assert parse_axis("lr=2/30,1/30") == ("lr", [2 / 30, 1 / 30])
    assert parse_axis("model_seed=0:4") == ("model_seed", [0, 1, 2, 3])
    assert parse_axis("model-seed=0:10:3") == ("model_seed", [0, 3, 6, 9])
    assert parse_axis("model=fc-tanh, fc-relu") == ("model", ["fc-tanh", "fc-relu"])
    assert parse_axis("width=none,32") == ("width", [None, 32])
    assert parse_axis("betas=[[0.9,0.99],[0.8,0.9]]") == ("betas", [[0.9, 0.99], [0.8, 0.9]])
    assert parse_axis("data_options=[{\"n_test\": 8}]") == ("data_options", [{"n_test": 8}])


@settings(max_examples=60, deadline=None)
@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(1, 7))
def test_integer_ranges_are_pythons_range(start, stop, step):
    values = list(range(start, stop, step))
    text = f"model_seed={start}:{stop}:{step}"
    if values:
        assert parse_axis(text) == ("model_seed", values)
    else:
        with pytest.raises(ValueError, match="has no values"):
            parse_axis(text)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1e-6, 1e3, allow_nan=False), min_size=1, max_size=8, unique=True))
def test_float_lists_round_trip(values):
    assert parse_axis("lr=" + ",".join(repr(v) for v in values)) == ("lr", values)


def test_the_grid_is_the_product_with_the_last_axis_fastest():
    grid = build_grid({"steps": 10, "n_train": 50},
                      [parse_axis("lr=0.1,0.2,0.4"), parse_axis("model_seed=0:2"),
                       parse_axis("model=fc-tanh,fc-relu")])
    configs = grid.configs()
    assert len(grid) == len(configs) == 12 == len({c.key() for c in configs})
    assert [(c.lr, c.model_seed, c.model) for c in configs[:3]] == [
        (0.1, 0, "fc-tanh"), (0.1, 0, "fc-relu"), (0.1, 1, "fc-tanh")]
    assert all(c.steps == 10 and c.n_train == 50 for c in configs)
    assert grid.point(configs[-1]) == {"lr": 0.4, "model_seed": 1, "model": "fc-relu"}


@pytest.mark.parametrize("axes,match", [
    (["lrr=0.1"], "unknown grid field 'lrr' \\(did you mean 'lr'\\?\\); fields: dataset"),
    (["lr=0.1", "optimiser=gd"], "unknown grid field 'optimiser' \\(did you mean 'optimizer'"),
    (["lr="], "grid field 'lr' has no values"),
    (["lr=[]"], "grid field 'lr' has no values"),
    (["model_seed=4:0"], "grid field 'model_seed' has no values"),
    (["lr=0.1,-1"], "grid value lr=-1.0 is rejected: lr=-1.0 is not allowed; use a finite"),
    (["lr=0.1,nan"], "grid value lr=nan is rejected"),
    (["model=fc-tanh,resnet50"], "grid value model='resnet50' is rejected: .*allowed: fc-tanh"),
    (["steps=10,0"], "grid value steps=0 is rejected: steps=0 is not allowed"),
    (["model_seed=0,a"], "grid value model_seed='a' is not an integer"),
    (["model_seed=0:a"], "grid value model_seed='0:a' is not a range"),
    (["lr=0.1:0.5"], "ranges start:stop\\[:step\\] are for integer fields"),
    (["lr=0.1,0.1"], "grid field 'lr' repeats the value 0.1"),
    (["lr=0.1", "lr=0.2"], "grid field 'lr' is given twice"),
    (["width=8,0"], "grid value width=0 is rejected: width=0 is not allowed"),
    (["depth=1", "model=fc-tanh,cnn", "width=2,-3"], "width=-3"),
    (["betas=0.9"], "grid value betas='0.9' is not a tuple"),
    (["lr0.1"], "grid axis 'lr0.1' needs the form FIELD=V1,V2"),
])
def test_bad_grids_fail_before_any_work_naming_the_value(axes, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        build_grid({"steps": 5, "n_train": 20}, [parse_axis(a) for a in axes])


def test_a_combination_the_config_rejects_names_the_point():
    with pytest.raises(ValueError, match="grid point optimizer='ngd', momentum=0.5 is rejected"):
        build_grid({"n_train": 20, "steps": 5},
                   {"optimizer": ["gd", "ngd"], "momentum": [0.0, 0.5]})


def test_grid_files_json_and_yaml(tmp_path):
    blob = {"base": {"steps": 7, "n_train": 40}, "grid": {"lr": [0.1, 0.2], "model_seed": "2:5"}}
    (tmp_path / "g.json").write_text(json.dumps(blob))
    (tmp_path / "g.yaml").write_text("steps: 7\nn_train: 40\nlr: [1/10, 0.2]\nmodel_seed: 2:5\n"
                                     "betas: [0.9, 0.99]\n")
    for name in ("g.json", "g.yaml"):
        base, axes = load_grid_file(tmp_path / name)
        grid = build_grid(base, axes)
        assert len(grid) == 6 and grid.base.steps == 7 and list(grid.axes) == ["lr", "model_seed"]
        assert grid.axes["lr"] == [0.1, 0.2] and grid.axes["model_seed"] == [2, 3, 4]
    assert grid.base.betas == (0.9, 0.99)


@pytest.mark.parametrize("text,match", [
    ('{"grid": {"lr": []}}', None),
    ('{"base": {"steps": 5}}', "no axes under 'grid'"),
    ('{"base": {"lr": 0.1}, "grid": {"lr": [0.2]}}', "gives \\['lr'\\] in both base and grid"),
    ('{"grid": {"lr": [0.1]}, "extra": 1}', "has keys \\['extra'\\]"),
    ('[1, 2]', "must hold a mapping"),
    ('{"lr": [0.1', "is not valid JSON"),
    ('{"lrr": [0.1]}', "unknown grid field 'lrr'"),
])
def test_bad_grid_files_are_named(tmp_path, text, match):
    path = tmp_path / "g.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match or "grid field 'lr' has no values"):
        base, axes = load_grid_file(path)
        build_grid(base, axes)


def test_a_base_config_object_and_the_deep_check_can_be_skipped(monkeypatch):
    import eoslab.core.experiment

    def no_setup(config):
        raise AssertionError("deep=False must not build a setup")

    monkeypatch.setattr(eoslab.core.experiment, "build_setup", no_setup)
    grid = build_grid(TrainConfig(steps=3), {"width": [4, 8]}, deep=False)
    assert [c.width for c in grid.configs()] == [4, 8]
    with pytest.raises(AssertionError, match="deep=False must not build"):
        build_grid(TrainConfig(steps=3), {"width": [4, 8]})


def test_data_this_machine_lacks_fails_locally_and_passes_for_a_cluster(monkeypatch, tmp_path):
    monkeypatch.setenv("EOSLAB_DATA", str(tmp_path / "no-cifar-here"))
    axes = {"lr": [0.1, 0.2]}
    with pytest.raises(ValueError, match="grid point lr=0.1 cannot load its data on this machine"):
        build_grid({"dataset": "cifar10-1k", "steps": 5}, axes)
    grid = build_grid({"dataset": "cifar10-1k", "steps": 5}, axes, skip_missing_data=True)
    assert len(grid) == 2
