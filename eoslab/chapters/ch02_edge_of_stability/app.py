"""Chapter 02's app: several step sizes trained live, sharpness rising to 2/η and hovering.

A thin :class:`~eoslab.ui.app.ChapterApp` over
:func:`eoslab.chapters.ch02_edge_of_stability.experiment.experiment` (Cohen et al., ICLR 2021,
arXiv 2103.00065). The step-size slider sets the largest η; the preset's ``lr_ratios``
give the others (default: η, 2/3 η, 1/2 η). Two menus pick the architecture (fc-tanh,
fc-relu, a small CNN) and the loss (MSE, cross-entropy), as Cohen et al. vary them.

The step-size slider spans :data:`LR_SPAN` times the edge step size
:math:`(2+2\\beta)/\\lambda_0` of the chosen network at initialisation (the preset's
``lr_edge`` for its own network and loss, else measured once by
:func:`~eoslab.chapters.ch02_edge_of_stability.experiment.initial_sharpness`); its label
names that edge.

Usage (in a notebook)::

    app = EdgeOfStabilityApp("quick", store=False)
    app.set(lr=0.3, momentum=0.5)     # trains again in the background
    app
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from eoslab.chapters.ch02_edge_of_stability import charts
from eoslab.chapters.ch02_edge_of_stability.experiment import (
    edge_band,
    eos_configs,
    experiment,
    initial_sharpness,
)
from eoslab.chapters.ch02_edge_of_stability.meta import ARCHITECTURES, LOSSES, chosen_net
from eoslab.ui.app import ChapterApp
from eoslab.ui.base import slider

__all__ = ["LR_SPAN", "EdgeOfStabilityApp", "edge_band", "eos_configs", "lr_edge"]

#: the step-size slider spans this fraction below to this multiple above the edge step size
LR_SPAN = (0.2, 2.0)


def lr_edge(preset, arch: str | None = None, loss: str | None = None,
            momentum: float = 0.0) -> float | None:
    """The step size :math:`(2+2\\beta)/\\lambda_0` at the stability threshold at init.

    ``preset.lr_edge`` for the preset's own network and loss, else measured; ``None`` when
    the data are not available (e.g. CIFAR-10 not installed).
    """
    net = chosen_net(preset, arch, loss)
    if net == preset.net and preset.lr_edge is not None:
        edge = preset.lr_edge
    else:
        try:
            edge = 2.0 / initial_sharpness(net)
        except (ImportError, FileNotFoundError, OSError):
            return None
    return edge * (1 + momentum)


def _run_line(run: dict, momentum: float) -> str:
    """One status line: a step size's state in words (:func:`.experiment.run_state`)."""
    text = run.get("words") or run["status"]
    if run["status"] == "diverged":
        edge = (2 + 2 * momentum) / run["lr"]
        text += f": η is too large for this curvature ({charts.edge_name(momentum)} = {edge:.3g}"
        if run.get("last_sharpness") is not None:
            text += f", last sharpness λ = {run['last_sharpness']:.3g}"
        text += ")"
    if run.get("sharpness0") is not None:
        text += f"; λ at step 0 = {run['sharpness0']:.3g}"
    if run.get("from_store"):
        text += " (run from the store)"
    return f"<b>{html.escape(charts.run_label(run['lr'], momentum))}</b>: {html.escape(text)}"


def _menu(options, value, description: str, css: str) -> widgets.Dropdown:
    menu = widgets.Dropdown(options=options, value=value, description=description,
                            layout=widgets.Layout(width="300px"))
    menu.add_class(css)
    return menu


class EdgeOfStabilityApp(ChapterApp):
    """Step size and momentum sliders, architecture and loss menus, Run/Stop, the figure.

    CSS classes: ``eoslab-app``, ``eoslab-preset``, ``eoslab-lr-slider``,
    ``eoslab-momentum-slider``, ``eoslab-arch-menu``, ``eoslab-loss-menu``, ``eoslab-run``,
    ``eoslab-stop``, ``eoslab-progress``, ``eoslab-status``, ``eoslab-chart``. The chart's
    titles name ``2/η`` without momentum and ``(2+2β)/η`` with it (:meth:`layout_signature`).

    Attributes:
        lr, momentum: the two sliders (``sliders["lr"]``, ``sliders["momentum"]``).
    """

    CHAPTER = "02"
    KIND = "ch02_edge_of_stability"
    LR_RANGE = (0.01, 2.5, 0.01)  # used only where the edge cannot be measured
    LR_LABEL = "largest step size η"
    LR_SPAN = LR_SPAN
    LR_LABEL_WIDTH, LR_WIDTH = "250px", "560px"
    experiment = staticmethod(experiment)

    @property
    def lr(self):
        return self.sliders["lr"]

    @property
    def momentum(self):
        return self.sliders["momentum"]

    def _edge(self, preset=None) -> float | None:
        preset = preset or self.preset
        # the last accepted values: a refused one must not move the step size's range
        good = getattr(self, "_good", {})
        values = {n: good.get(n, w.value) for n, w in getattr(self, "sliders", {}).items()}
        return lr_edge(preset, values.get("arch"), values.get("loss"),
                       float(values.get("momentum", preset.momentum)))

    def lr_edge_of(self, preset) -> float | None:
        """The edge step size of the chosen network, loss and momentum under ``preset``."""
        return self._edge(preset)

    def lr_label(self, preset) -> str:
        return self._label(self._edge(preset))

    def lr_edge_name(self, preset) -> str:
        sliders = getattr(self, "sliders", {})
        beta = sliders["momentum"].value if "momentum" in sliders else preset.momentum
        return "(2+2β)/λ₀" if beta else "2/λ₀"

    def _label(self, edge: float | None) -> str:
        if edge is None:
            return self.LR_LABEL
        return f"{self.LR_LABEL} (edge {self.lr_edge_name(self.preset)} ≈ {edge:.2g})"

    def make_lr_slider(self) -> dict:
        sliders = super().make_lr_slider()  # LR_SPAN times the edge, labelled by lr_label
        edge = self._edge()
        if edge is not None:  # 200 steps to the edge, whatever the network
            sliders["lr"].step = float(f"{edge / 200:.1g}")
        self._shown_edge = edge
        self._shown_choice = (self.preset.net.model, self.preset.net.loss, self.preset)
        return sliders

    def make_sliders(self) -> dict:
        arch = _menu(list(ARCHITECTURES), self.preset.net.model, "network", "eoslab-arch-menu")
        loss = _menu([(label, name) for name, label in LOSSES.items()], self.preset.net.loss,
                     "loss", "eoslab-loss-menu")
        return {"momentum": slider("momentum β", self.preset.momentum, 0.0, 0.9, 0.05,
                                   "eoslab-momentum-slider", continuous=False),
                "arch": arch, "loss": loss}

    def _fit_lr_slider(self) -> None:
        """Follow the edge of the chosen network, loss and momentum (range and label).

        A new network or loss also rescales the step size by the ratio of the edges, so
        that it keeps its place relative to the edge.
        """
        edge = self._edge()
        choice = (self.sliders["arch"].value, self.sliders["loss"].value, self.preset)
        if edge is None or (edge == self._shown_edge and choice == self._shown_choice):
            return
        w, old = self.lr, self._shown_edge
        rescale = old is not None and choice[:2] != self._shown_choice[:2] and \
            choice[2] is self._shown_choice[2]
        w.unobserve(self._on_setting, names="value")
        try:
            low, high = self.slider_range("lr", self.preset)
            value = w.value * edge / old if rescale else w.value
            w.step = float(f"{edge / 200:.1g}")
            self._set_range(w, low, high)
            self._lr_bounds = (low, high)  # what the guard allows; never the widget's own
            w.value = min(max(round(value, 4), low), high)
            self._good["lr"] = w.value
            self._shown_edge, self._shown_choice = edge, choice
        finally:
            w.observe(self._on_setting, names="value")

    def allowed_range(self, name: str) -> tuple[float, float] | None:
        """The step size may take any value of the slider's current range.

        The range follows the chosen network (:meth:`_fit_lr_slider`), so a value that
        was fine for the last network is checked before the slider moves to the new one.
        The range is the one the kernel set, never the widget's state, which a client
        may change.
        """
        bounds = getattr(self, "_lr_bounds", None)
        if name == "lr" and bounds is not None:
            return bounds
        return super().allowed_range(name)

    def _relayout(self, settings: dict) -> None:
        self._fit_lr_slider()
        edge = self._edge()
        if edge is None:
            self._shown_edge = None
        self.lr.description = self._label(edge)
        super()._relayout(self.settings())

    def configs(self) -> list:
        """The :class:`~eoslab.core.config.TrainConfig` of each step size shown."""
        s = self.settings()
        return eos_configs(self.preset, s["lr"], s["momentum"], s["arch"], s["loss"])

    def layout(self, settings: dict):
        beta = settings["momentum"]
        time_max = settings["lr"] * self.preset.steps / (1 - beta)
        return charts.eos_chart({}, beta, time_max=time_max)

    def layout_signature(self, settings: dict) -> tuple:
        return (settings["momentum"], settings["lr"])  # the time axis ends at lr*steps/(1-β)

    def total_work(self, settings: dict) -> int:
        return self.preset.steps * len(self.preset.lr_ratios)

    def describe(self, result: dict) -> str:
        lines = [_run_line(run, result["momentum"]) for run in result["runs"]]
        if result.get("flow_end"):
            lines.append(html.escape(f"{charts.FLOW}: integrated from the same weights up to "
                                     f"time {result['flow_end']:.3g}"))
        return "<br>".join(lines)

    def describe_diverged(self, result: dict) -> str:
        d = result["diverged"]
        momentum = float(d.get("momentum", 0.0))
        loss = "not finite" if d["loss"] >= 1e300 else f"{d['loss']:.2g}"
        text = (f"{d['stage']} diverged at step {d['step']} (loss {loss}): η = {d['lr']:.3g} "
                f"is too large for this curvature ({charts.edge_name(momentum)} = "
                f"{(2 + 2 * momentum) / d['lr']:.3g})")
        lines = [html.escape(text)]
        if len(result.get("runs", ())) > 1:
            lines += [_run_line(run, result["momentum"]) for run in result["runs"]]
        return "<br>".join(lines)
