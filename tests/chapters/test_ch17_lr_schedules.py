"""Chapter 17's phenomenon on its quick preset, through the app the chapter shows: under
SGDR the sharpness stays at or below 2/eta(t), and the warm restart (2/eta dropping below
the sharpness) is followed by a loss spike and a fall of the sharpness to about the new
2/eta: a catapult. The range test brackets a range of rates below its blow-up."""

from eoslab.chapters.ch17_lr_schedules.app import ScheduleApp
from eoslab.optimizers.schedules import catapults, edge_ratios


def test_sgdr_restart_catapults_and_sharpness_stays_below_2_over_eta():
    app = ScheduleApp("quick", store=False, auto_run=False)
    app.run(wait=True)
    history = app.result.history
    assert app.result.status == "finished"
    found = [c for c in catapults(history, window=60) if c["sharp_after"] is not None]
    assert len(found) == 1
    c = found[0]
    assert c["sharp_before"] > 1.2 * c["edge"]         # the restart makes GD unstable ...
    assert c["spike"] > 1.3                              # ... the loss spikes ...
    assert c["sharp_after"] < 0.9 * c["sharp_before"]    # ... and the sharpness falls
    assert c["sharp_after"] < 1.25 * c["edge"]           # to about the new 2/eta
    restart = c["step"]
    end = app.config().steps  # the last row holds theta_T with the next cycle's eta
    calm = [r for s, r in edge_ratios(history) if not restart <= s <= restart + 60 and s < end]
    assert max(calm) < 1.15                # elsewhere the sharpness stays below ~2/eta(t)
    early = [r for s, r in edge_ratios(history) if s < restart]
    assert max(early) > 0.8                # and reaches it while eta is near its peak
    assert "restart at step" in app.controls.status.value
    rt = app.range_test
    assert rt.low < rt.steepest < rt.high < rt.lrs[-1] and rt.stopped_early
    assert rt.losses[-1] > 4 * min(rt.losses)


def test_stop_ends_the_background_run_at_once():
    app = ScheduleApp("quick", store=False, auto_run=False)
    app.run()
    assert app.runner.running
    app.stop()
    assert app.controls.stop.disabled and app.controls.status.value == "stopped"
    assert app.wait(60) and not app.runner.running
