"""The tracker's live chart: its spec, its legend and its updates as rows arrive."""

import pytest
import torch
import torch.nn.functional as F
from chart_specs import marks
from torch import nn

import eoslab
from eoslab.ui.track_view import (
    PRECOND,
    SHARPNESS,
    TrackView,
    curvature_series,
    track_chart,
    track_data,
)

DT = torch.float64


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.bn = nn.BatchNorm1d(2)

    def forward(self, x):
        return self.bn(self.fc(x))


def setup(optimizer="sgd", every=2):
    torch.manual_seed(0)
    model = Tiny().to(DT)
    x, y = torch.randn(10, 3, dtype=DT), torch.randn(10, 2, dtype=DT)
    opt = (torch.optim.Adam(model.parameters(), lr=0.01) if optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=0.1))
    return model, opt, x, y, eoslab.track(model, F.mse_loss, x, y, every=every)


def steps(model, opt, x, y, tracker, n):
    for _ in range(n):
        opt.zero_grad()
        F.mse_loss(model(x), y).backward()
        opt.step()
        tracker.step(opt)


def _find(node, key):
    """Every value of ``key`` in a nested spec."""
    if isinstance(node, dict):
        return ([node[key]] if key in node else []) + [v for x in node.values()
                                                       for v in _find(x, key)]
    if isinstance(node, list):
        return [v for x in node for v in _find(x, key)]
    return []


def test_spec_has_the_datasets_fields_and_readable_titles():
    rows = [{"step": 2, "loss": 0.5, "sharpness": 3.0, "eig_2": 1.0, "threshold": 20.0,
             "trace": 7.0},
            {"step": 4, "loss": float("nan"), "sharpness": None, "threshold": 20.0}]
    spec = track_chart(rows, "2/η", k=2).to_dict()
    assert set(spec["datasets"]) == {"loss", "curvature", "trace"}
    assert spec["datasets"]["loss"] == [{"step": 2, "loss": 0.5}]  # NaN left out
    assert spec["datasets"]["curvature"] == [
        {"step": 2, "series": SHARPNESS, "value": 3.0}, {"step": 2, "series": "λ2", "value": 1.0},
        {"step": 2, "series": "threshold 2/η", "value": 20.0},
        {"step": 4, "series": "threshold 2/η", "value": 20.0}]
    assert spec["datasets"]["trace"] == [{"step": 2, "trace": 7.0}]
    assert set(marks(spec)) == {("line", "curvature"), ("line", "loss"), ("line", "trace")}
    domains = _find(spec, "domain")
    assert [SHARPNESS, "λ2", "threshold 2/η"] in domains
    # the threshold, and only it, is dashed
    assert [[1, 0], [1, 0], [6, 4]] in _find(spec, "range")
    titles = set(map(str, _find(spec, "title")))
    assert {"sharpness against its threshold (dashed)", "train loss", "trace tr ∇²L"} <= titles


def test_adaptive_optimisers_plot_the_preconditioned_sharpness():
    assert curvature_series("38/η", adaptive=True) == [PRECOND, "threshold 38/η"]
    data = track_data([{"step": 3, "loss": 1.0, "sharpness": 2.0, "precond_sharpness": 90.0,
                        "threshold": 3800.0}], "38/η", adaptive=True)
    assert [(r["series"], r["value"]) for r in data["curvature"]] == [
        (PRECOND, 90.0), ("threshold 38/η", 3800.0)]


@pytest.mark.parametrize("mode", ["jupyter", "svg"])
def test_recorded_rows_update_the_view(mode):
    model, opt, x, y, tracker = setup("adam")
    view = TrackView(tracker, mode=mode)
    assert view.chart.spec["datasets"] == {"loss": [], "curvature": [], "trace": []}
    assert "no row yet" in view.status.value
    steps(model, opt, x, y, tracker, 2)
    # the first row names the optimiser: a new legend, so a new layout
    spec = view.chart.spec
    assert [PRECOND, "threshold 38/η"] in _find(spec, "domain")
    assert [r["value"] for r in spec["datasets"]["curvature"]] == [
        pytest.approx(tracker.history[0]["precond_sharpness"]), pytest.approx(3800.0)]
    base = {k: v for k, v in spec.items() if k != "datasets"}
    sent = view.chart.updates
    steps(model, opt, x, y, tracker, 2)
    # later rows only swap the datasets
    assert view.chart.updates == sent + 1
    assert {k: v for k, v in view.chart.spec.items() if k != "datasets"} == base
    assert [r["step"] for r in view.chart.spec["datasets"]["loss"]] == [2, 4]
    assert "step 4: loss" in view.status.value and "38/η = 3800" in view.status.value
    if mode == "jupyter":
        assert view.chart.widget.datasets == view.chart.spec["datasets"]
    else:
        assert view.chart.widget.value.startswith("<svg")
    assert {"eoslab-track"} <= set(view.widget._dom_classes)


def test_divergence_shows_in_the_status_line():
    model, opt, x, y, tracker = setup()
    view = TrackView(tracker, mode="svg")
    steps(model, opt, x, y, tracker, 2)
    with torch.no_grad():
        model.bn.weight.mul_(1e4)  # BatchNorm undoes a scaled fc, not a scaled gain
    steps(model, opt, x, y, tracker, 2)
    assert tracker.diverged is not None and tracker.diverged[0] == 4
    assert view.status.value.startswith("diverged at step 4: loss")
    assert [r["step"] for r in view.chart.spec["datasets"]["loss"]] == [2, 4]


def test_displaying_a_tracker_builds_one_live_view(monkeypatch):
    model, opt, x, y, tracker = setup()
    bundle = tracker._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    view = tracker.show()
    assert view is tracker.view() and shown == [view.widget]
    steps(model, opt, x, y, tracker, 2)
    assert [r["step"] for r in view.chart.spec["datasets"]["loss"]] == [2]
