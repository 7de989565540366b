"""The playground's widgets: the menus and fields that name a run, and the view controls.

:func:`make_settings` builds one widget per :data:`~eoslab.ui.playground.choices.DEFAULTS`
entry (CSS class ``eoslab-pg-<name>``); :func:`show_relevant` hides the hyperparameters
the chosen optimiser does not take. :class:`ViewControls` holds what changes the view
but not the run: Pause / Resume, the run list with Remove, top-k and trace, and the
recorded-step menu of the slices.

Values are read back as plain Python numbers; the range checks happen in
:class:`~eoslab.core.config.TrainConfig` (a ``ValueError`` naming the value).
"""

from __future__ import annotations

import ipywidgets as widgets

from eoslab.ui.playground.choices import (
    DATASETS,
    DEFAULTS,
    LOSSES,
    MODELS,
    OPTIMIZERS,
    SCHEDULES,
    relevant,
)

__all__ = ["ViewControls", "make_settings", "read", "show_relevant"]

_STYLE = {"description_width": "120px"}


def _box() -> dict:
    """A fresh layout per widget (hiding one must not hide the others)."""
    return {"layout": widgets.Layout(width="300px"), "style": _STYLE}

_LABELS = {"n_train": "examples", "lr": "step size η", "momentum": "momentum β",
           "beta1": "β₁", "beta2": "β₂", "weight_decay": "weight decay", "rho": "SAM ρ",
           "sigma": "label noise σ", "batch_size": "batch size", "sharpness_every":
           "sharpness every"}
_MENUS = {"dataset": DATASETS, "model": MODELS, "loss": LOSSES, "optimizer": OPTIMIZERS,
          "schedule": SCHEDULES}
_INTS = ("n_train", "width", "depth", "batch_size", "steps", "sharpness_every")


def _widget(name: str, value):
    label = _LABELS.get(name, name)
    if name in _MENUS:
        w = widgets.Dropdown(options=_MENUS[name], value=value, description=label, **_box())
    elif name in _INTS:
        w = widgets.BoundedIntText(value=value, min=0, max=10**7, description=label,
                                   **_box())
    else:
        w = widgets.FloatText(value=value, description=label, **_box())
    w.add_class(f"eoslab-pg-{name.replace('_', '-')}")
    return w


def make_settings(defaults: dict | None = None) -> dict[str, widgets.Widget]:
    """One widget per setting, with the playground's first values (``defaults`` override)."""
    values = {**DEFAULTS, **(defaults or {})}
    return {name: _widget(name, value) for name, value in values.items()}


def read(settings: dict[str, widgets.Widget]) -> dict:
    """The settings' values as plain numbers and names."""
    out = {}
    for name, w in settings.items():
        value = w.value
        out[name] = int(value) if name in _INTS else value if name in _MENUS else float(value)
    return out


def show_relevant(settings: dict[str, widgets.Widget]) -> None:
    """Show only the hyperparameters of the chosen optimiser (and model sizes that apply)."""
    opt, model = settings["optimizer"].value, settings["model"].value
    for name, w in settings.items():
        visible = relevant(name, opt)
        if name in ("width", "depth"):
            visible = model != "linear"
        if name == "n_train":
            visible = settings["dataset"].value != "quadratic"
        w.layout.display = None if visible else "none"


class ViewControls:
    """Pause, the run list, eigenvalue count, trace and the slices' step menu.

    CSS classes: ``eoslab-pause``, ``eoslab-runs``, ``eoslab-remove``, ``eoslab-topk``,
    ``eoslab-trace``, ``eoslab-slice-step``, ``eoslab-slice-status``.
    """

    def __init__(self):
        self.pause = widgets.Button(description="Pause", icon="pause", disabled=True)
        self.pause.add_class("eoslab-pause")
        self.runs = widgets.SelectMultiple(options=[], description="runs shown",
                                           layout=widgets.Layout(width="620px", height="110px"),
                                           style={"description_width": "120px"})
        self.runs.add_class("eoslab-runs")
        self.remove = widgets.Button(description="Remove", icon="trash")
        self.remove.add_class("eoslab-remove")
        self.topk = widgets.BoundedIntText(value=1, min=1, max=10, description="top-k eigs",
                                           **_box())
        self.topk.add_class("eoslab-topk")
        self.trace = widgets.Checkbox(value=False, description="trace (Hutchinson)")
        self.trace.add_class("eoslab-trace")
        self.step = widgets.Dropdown(options=[], description="slices at step", **_box())
        self.step.add_class("eoslab-slice-step")
        self.slice_status = widgets.HTML("")
        self.slice_status.add_class("eoslab-slice-status")
