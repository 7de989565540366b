"""Chapter 19's app: Lookahead's fast zig-zag and slow path on a 2-D quadratic.

Everything is cheap (:mod:`eoslab.optimizers.lookahead` runs ``torch.optim.SGD`` inside
:class:`~eoslab.optimizers.lookahead.Lookahead` on two numbers), so a slider move recomputes the
paths synchronously and swaps the chart's datasets in place, as chapter 01 does.  The
noise-floor comparison (many noisy seeds) runs once per setting in a background thread.
"""

from __future__ import annotations

import html

import altair as alt
import ipywidgets as widgets
import numpy as np

from eoslab.chapters.ch01_quadratic_stability.quadratic import Quadratic, default_levels, level_sets
from eoslab.chapters.presets import Preset, get_preset, preset_for
from eoslab.optimizers.lookahead import (
    exact_noise_floors,
    lookahead_factor,
    lookahead_paths,
    lookahead_threshold,
    noise_floors,
)
from eoslab.ui import plots
from eoslab.ui.base import BackgroundRunner, LiveChart, preset_dropdown, slider

__all__ = ["LookaheadApp", "lookahead_chart", "lookahead_data", "lookahead_verdict"]

CHAPTER = "19"
W, H = plots.WIDTH, plots.HEIGHT


def lookahead_verdict(quadratic: Quadratic, lr: float, alpha: float, k: int, paths=None) -> str:
    """The status sentence: GD alone vs Lookahead at this step size, with both thresholds.

    "diverged" is said of the app's optimiser, Lookahead, only; GD alone past its edge
    "blows up".

    >>> lookahead_verdict(Quadratic((1.0, 0.1)), 2.1, 0.5, 5)
    'Lookahead(alpha=0.5, k=5): converges (eta = 2.1 < eta* = 2.25). GD alone: unstable (eta = 2.1 > 2/lambda_max = 2).'
    """
    lam = quadratic.lambda_max
    gd_edge, la_edge = 2.0 / lam, lookahead_threshold(lam, alpha, k)
    rho = max(abs(lookahead_factor(lr, v, alpha, k)) for v in quadratic.eigenvalues if v > 0)
    gd = (f"converges (eta = {lr:.3g} < 2/lambda_max = {gd_edge:.3g})" if lr < gd_edge else
          f"unstable (eta = {lr:.3g} > 2/lambda_max = {gd_edge:.3g})")
    la = (f"converges (eta = {lr:.3g} < eta* = {la_edge:.3g})" if rho < 1 else
          f"does not converge (eta = {lr:.3g} > eta* = {la_edge:.3g})")
    if paths is not None and paths.inner_diverged is not None:
        gd = f"blows up at step {paths.inner_diverged} " + gd.replace("unstable ", "")
    if paths is not None and paths.lookahead_diverged is not None:
        la = (f"diverged at step {paths.lookahead_diverged} "
              + la.replace("does not converge ", ""))
    return f"Lookahead(alpha={alpha:.3g}, k={k}): {la}. GD alone: {gd}."


def _layout(view: float, max_lr: float):
    dom = alt.Scale(domain=[-view, view])
    xy = {"x": alt.X("x:Q", scale=dom, title="w1"), "y": alt.Y("y:Q", scale=dom, title="w2")}
    levels = alt.Chart(alt.Data(name="levels")).mark_line(color="#ccc", clip=True).encode(
        **xy, detail="level:N", order="order:Q")
    color = alt.Color("path:N", title="path", scale=alt.Scale(
        domain=["GD alone", "fast weights", "slow weights"],
        range=["#999999", "#ff7f0e", "#1f77b4"]))
    paths = alt.Chart(alt.Data(name="paths")).mark_line(clip=True, strokeWidth=1.5).encode(
        **xy, color=color, order="step:Q", strokeDash=alt.StrokeDash("path:N", legend=None))
    slow = alt.Chart(alt.Data(name="paths")).transform_filter(
        "datum.path == 'slow weights'").mark_circle(size=40, clip=True, color="#1f77b4").encode(
        **xy, tooltip=["step:Q", "loss:Q"])
    plane = alt.layer(levels, paths, slow).properties(
        width=H + 60, height=H + 60, title="fast zig-zag, slow path (dots: every k steps)")
    loss = alt.Chart(alt.Data(name="paths")).mark_line(clip=True).encode(
        x=alt.X("step:Q"), y=alt.Y("loss:Q", scale=alt.Scale(type="log"), title="loss"),
        color=color).transform_filter("datum.loss > 1e-14 && datum.loss < 1e12").properties(
        width=W, height=H, title="loss")
    lr_scale = alt.Scale(domain=[0, max_lr])
    rates = alt.Chart(alt.Data(name="rates")).mark_line().encode(
        x=alt.X("lr:Q", scale=lr_scale, title="step size eta"),
        y=alt.Y("rate:Q", title="error factor per step", scale=alt.Scale(domain=[0, 1.5],
                                                                          clamp=True)),
        color=alt.Color("method:N", title="method"))
    one = alt.Chart(alt.Data(values=[{"one": 1.0}])).mark_rule(color="black").encode(y="one:Q")
    edges = alt.Chart(alt.Data(name="thresholds")).mark_rule(strokeDash=[6, 4]).encode(
        x=alt.X("threshold:Q", scale=lr_scale), color=alt.Color("method:N"))
    now = alt.Chart(alt.Data(name="current")).mark_rule(color="red").encode(
        x=alt.X("lr:Q", scale=lr_scale))
    stability = alt.layer(rates, one, edges, now).properties(
        width=W, height=H, title="below 1 converges; dashed: 2/lambda_max and eta*")
    return alt.hconcat(plane, alt.vconcat(loss, stability).resolve_scale(
        color="independent")).resolve_scale(color="independent")


def lookahead_data(quadratic: Quadratic, paths, lr: float, alpha: float, k: int,
                   max_lr: float, n_rates: int = 150) -> dict:
    """Datasets of :func:`lookahead_chart`: levels, paths (path, step, x, y, loss), rates,
    thresholds, current.
    """
    start = paths.inner[0]
    level_rows = []
    for level, curve in zip(default_levels(quadratic, start),
                            level_sets(quadratic, default_levels(quadratic, start), n=64)):
        level_rows += plots.rows({"x": curve[:, 0], "y": curve[:, 1],
                                  "order": range(len(curve))}, level=f"{level:.3g}")
    path_rows = []
    for name, pts, losses, stride in (("GD alone", paths.inner, paths.inner_loss, 1),
                                      ("fast weights", paths.fast, paths.fast_loss, 1),
                                      ("slow weights", paths.slow, paths.slow_loss, k)):
        path_rows += plots.rows({"step": np.arange(len(pts)) * stride, "x": pts[:, 0],
                                 "y": pts[:, 1], "loss": losses}, path=name)
    grid = np.linspace(max_lr / n_rates, max_lr, n_rates)
    lams = [v for v in quadratic.eigenvalues if v > 0]
    gd = [max(abs(1 - g * v) for v in lams) for g in grid]
    la = [max(abs(lookahead_factor(g, v, alpha, k)) for v in lams) ** (1 / k) for g in grid]
    name = f"Lookahead a={alpha:.2g} k={k}"
    rate_rows = (plots.rows({"lr": grid, "rate": gd}, method="GD alone")
                 + plots.rows({"lr": grid, "rate": la}, method=name))
    lam = quadratic.lambda_max
    return {"levels": level_rows, "paths": path_rows, "rates": rate_rows,
            "thresholds": [{"method": "GD alone", "threshold": 2 / lam},
                           {"method": name, "threshold": lookahead_threshold(lam, alpha, k)}],
            "current": [{"lr": lr}]}


def lookahead_chart(quadratic: Quadratic, paths, lr: float, alpha: float, k: int,
                    view: float = 2.4, max_lr: float = 3.0):
    """The chapter-19 figure: contours with the three paths, loss, and the stability diagram."""
    return plots.with_datasets(_layout(view, max_lr),
                               lookahead_data(quadratic, paths, lr, alpha, k, max_lr))


def _resolve(preset) -> Preset:
    if isinstance(preset, Preset):
        return preset
    return get_preset(CHAPTER, preset) if preset else preset_for(CHAPTER)


class LookaheadApp:
    """Sliders for eta, alpha, k and gradient noise; the live figure; a status line.

    CSS classes: ``eoslab-app``, ``eoslab-preset``, ``eoslab-lr-slider``,
    ``eoslab-alpha-slider``, ``eoslab-k-slider``, ``eoslab-noise-slider``,
    ``eoslab-status``, ``eoslab-chart``.

    Attributes:
        paths: the current :class:`~eoslab.optimizers.lookahead.Paths`.
        floors: the last noise-floor comparison (:func:`~eoslab.optimizers.lookahead.noise_floors`).
    """

    def __init__(self, preset: str | None = None, chart_mode: str = "auto"):
        self.preset = p = _resolve(preset)
        self.preset_menu = preset_dropdown(CHAPTER, p.name)
        self.lr = slider("step size eta", p["lr"], 0.05, 3.0, 0.01, "eoslab-lr-slider")
        self.alpha = slider("slow step alpha", p["alpha"], 0.05, 1.0, 0.05, "eoslab-alpha-slider")
        self.k = widgets.IntSlider(value=p["k"], min=1, max=10, description="inner steps k",
                                   layout=widgets.Layout(width="480px"),
                                   style={"description_width": "160px"})
        self.k.add_class("eoslab-k-slider")
        self.noise = slider("gradient noise sigma", p["noise"], 0.0, 0.5, 0.01,
                            "eoslab-noise-slider")
        self.status = widgets.HTML()
        self.status.add_class("eoslab-status")
        self.floor_text = widgets.HTML()
        self.runner = BackgroundRunner(on_error=lambda e: setattr(
            self.floor_text, "value", f"error: {html.escape(str(e))}"))
        self.floors: dict | None = None
        self._compute()
        self.chart = LiveChart(self._figure(), mode=chart_mode)
        self._say()
        for w in (self.lr, self.alpha, self.k, self.noise):
            w.observe(self._on_change, names="value")
        self.preset_menu.observe(self._on_preset, names="value")
        self.widget = widgets.VBox([self.preset_menu, self.lr, self.alpha, self.k, self.noise,
                                    self.status, self.floor_text, self.chart.widget])
        self.widget.add_class("eoslab-app")

    @property
    def quadratic(self) -> Quadratic:
        return Quadratic(self.preset["eigenvalues"], angle=self.preset["angle"])

    def _compute(self) -> None:
        self.paths = lookahead_paths(self.quadratic, self.preset["start"], self.lr.value,
                                     self.preset["steps"], alpha=self.alpha.value,
                                     k=self.k.value, noise=self.noise.value)

    def _figure(self):
        return lookahead_chart(self.quadratic, self.paths, self.lr.value, self.alpha.value,
                               self.k.value, max_lr=self.lr.max)

    def _say(self) -> None:
        self.status.value = html.escape(lookahead_verdict(
            self.quadratic, self.lr.value, self.alpha.value, self.k.value, self.paths))

    def update(self) -> None:
        """Recompute the paths from the sliders and refresh the chart's data in place."""
        self._compute()
        self.chart.update(lookahead_data(self.quadratic, self.paths, self.lr.value,
                                         self.alpha.value, self.k.value, self.lr.max))
        self._say()

    def measure_noise_floors(self, wait: bool = False) -> None:
        """SGD alone vs Lookahead's slow weights under gradient noise, at ``variance_lr``."""
        p, alpha, k = self.preset, self.alpha.value, self.k.value

        def job(stop, token):
            self.floor_text.value = "measuring the noise floors ..."
            got = noise_floors(self.quadratic, p["variance_lr"], p["variance_noise"],
                               p["variance_steps"], p["variance_seeds"], alpha=alpha, k=k)
            exact = exact_noise_floors(self.quadratic.eigenvalues, p["variance_lr"],
                                       p["variance_noise"], alpha=alpha, k=k)
            if not self.runner.current(token):
                return
            self.floors = got
            self.floor_text.value = html.escape(
                f"Noise floor at eta = {p['variance_lr']:.3g}, sigma = {p['variance_noise']:.3g} "
                f"({p['variance_seeds']} seeds): mean loss of SGD alone {got['inner']:.3g}, of "
                f"Lookahead's slow weights {got['slow']:.3g} (ratio {got['ratio']:.2f}; exact "
                f"{exact['ratio']:.2f}).")

        if wait:
            self.runner.run_sync(job)
        else:
            self.runner.start(job)

    def _on_change(self, change=None) -> None:
        self.update()
        if change is not None and change["owner"] in (self.alpha, self.k):
            self.measure_noise_floors()

    def _on_preset(self, change) -> None:
        self.preset = p = get_preset(CHAPTER, change["new"])
        widgets_ = (self.lr, self.alpha, self.k, self.noise)
        for w in widgets_:
            w.unobserve(self._on_change, names="value")
        self.lr.value, self.alpha.value = p["lr"], p["alpha"]
        self.k.value, self.noise.value = p["k"], p["noise"]
        for w in widgets_:
            w.observe(self._on_change, names="value")
        self._compute()
        self.chart.show(self._figure())
        self._say()
        self.measure_noise_floors()

    def set(self, **values) -> None:
        """Move sliders by name (``lr``, ``alpha``, ``k``, ``noise``)."""
        for name, value in values.items():
            if name not in ("lr", "alpha", "k", "noise"):
                raise ValueError(f"unknown control {name!r}; allowed: lr, alpha, k, noise")
            getattr(self, name).value = value

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

