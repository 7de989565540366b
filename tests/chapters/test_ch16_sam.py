"""Chapter 16's phenomenon on its quick preset, through the app the chapter uses."""

import pytest

from eoslab.chapters.ch16_sam.app import SAMApp, edge_ratio
from eoslab.chapters.ch16_sam.sam_edge import sam_experiment
from eoslab.chapters.presets import Preset, get_preset


def _full_batch_only():
    """The quick preset without the minibatch part (the tests below need only one part)."""
    quick = get_preset("16", "quick")
    return Preset("16", "quick", dict(quick.values, m_values=(), rho_ratios=(1.0,)),
                  quick.label)


@pytest.fixture(scope="module")
def app():
    app = SAMApp("quick", store=False, chart_mode="svg", auto_run=False)
    app.run_sync()
    return app


def test_gd_hovers_at_2_over_eta_and_sam_settles_at_its_lower_edge(app):
    r = app.result
    assert r["status"] == "finished"
    runs = {float(k): v for k, v in r["runs"].items()}
    gd, sam = runs[0.0], runs[max(runs)]
    assert 0.85 < edge_ratio(gd, "gd_edge") < 1.3
    assert edge_ratio(sam, "gd_edge") < 0.75, "SAM's sharpness stays well below 2/eta"
    assert 0.8 < edge_ratio(sam, "sam_edge") < 1.3, "... at its own, gradient-dependent edge"
    edges = [row["sam_edge"] for row in sam if row.get("sam_edge")]
    assert max(edges) < 2 / r["lr"]


def test_minibatch_sam_is_flatter_than_sgd_and_more_so_for_smaller_m(app):
    m_runs = {row["m"]: row["sharpness"] for row in app.result["m_runs"]}
    sgd = m_runs.pop(0)
    assert all(s < 0.8 * sgd for s in m_runs.values())
    ms = sorted(m_runs)
    assert m_runs[ms[0]] < m_runs[ms[-1]], m_runs


def test_sharpness_falls_as_rho_grows():
    values = _full_batch_only().values
    medians = []
    for rho in (0.02, 0.1):
        result = sam_experiment(values, values["lr"], rho)
        (rows,) = result["runs"].values()
        medians.append(edge_ratio(rows, "gd_edge"))
    assert medians[1] < 0.85 * medians[0]


def test_divergent_step_size_is_reported_and_the_app_recovers():
    app = SAMApp(_full_batch_only(), store=False, chart_mode="svg", auto_run=False)
    app.set(lr=app.lr.max)
    app.run_sync()
    assert app.result["status"] == "diverged"
    assert "diverged at step" in app.controls.status.value
    # the browser suite reads a status with "training" in it as a run still in progress
    assert "training" not in app.controls.status.value.lower()
    app.set(lr=app.preset["lr"])
    app.run_sync()
    assert app.result["status"] == "finished"
