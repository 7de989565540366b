"""The kernel-side check of every value a chapter app's controls send.

A page's widget state is the visitor's to change: a client can widen a slider's range and
then send any value, or a NaN. :class:`InputGuard` (a base of
:class:`~eoslab.ui.app.ChapterApp`) therefore checks each value against the range the app
allows (the range the slider was built with, or
:meth:`~eoslab.ui.app.ChapterApp.slider_range` under the current preset) and against the
options of a choice, whatever the widget says; a refused value is put back to the last good
one and the status line says why, and nothing is computed with it.
"""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["InputGuard", "choices", "setting_value", "shown"]


def setting_value(value: Any) -> Any:
    """A widget's value as it enters the settings: numbers rounded as shown.

    >>> setting_value(0.30000000000000004), setting_value(3), setting_value("gd")
    (0.3, 3, 'gd')
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    return int(value) if isinstance(value, int) else round(float(value), 6)


def choices(widget) -> tuple | None:
    """The values a selection widget offers (options as values or ``(label, value)`` pairs)."""
    options = getattr(widget, "options", None)
    if options is None:
        return None
    return tuple(o[1] if isinstance(o, tuple) and len(o) == 2 else o for o in options)


def shown(value: Any) -> str:
    """A control's value as a refusal names it.

    >>> shown(1e300), shown(7), shown(float("nan")), shown(10**400)
    ('1e+300', '7', 'nan', 'an integer of 401 digits')
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return repr(value)[:40]
    if isinstance(value, int) and abs(value) < 10**6:
        return str(value)
    try:
        return f"{value:.3g}"
    except OverflowError:
        return f"an integer of {len(str(abs(value)))} digits"


class InputGuard:
    """Checks of control values, for an app with ``sliders``, ``preset`` and ``controls``.

    The app records ``_built_ranges`` (name -> ``(min, max)`` at construction) and
    ``_good`` (name -> the last value that passed).
    """

    def slider_range(self, name: str, preset) -> tuple[float, float] | None:
        """The ``(min, max)`` of slider ``name`` under ``preset``; ``None`` keeps it."""
        return None

    def allowed_range(self, name: str) -> tuple[float, float] | None:
        """The ``(min, max)`` control ``name`` may send under the current preset.

        :meth:`slider_range` of the preset, else the range the slider was built with;
        ``None`` for a control that is not a number.
        """
        return self.slider_range(name, self.preset) or self._built_ranges.get(name)

    def check_setting(self, name: str, value: Any) -> str | None:
        """Why control ``name`` may not send ``value``, or ``None`` when it may.

        Example (the allowed range, not the widget's own, decides):
            >>> import ipywidgets as widgets
            >>> app = object.__new__(InputGuard)
            >>> app.preset, app._built_ranges = None, {"lr": (0.01, 3.0)}
            >>> app.sliders = {"lr": widgets.FloatSlider(description="step size η")}
            >>> app.check_setting("lr", 1e300)
            'step size η = 1e+300 is outside [0.01, 3]'
            >>> app.check_setting("lr", float("nan")), app.check_setting("lr", 0.5)
            ('step size η = nan is not a finite number', None)
        """
        widget = self.sliders[name]
        label = getattr(widget, "description", "") or name
        options = choices(widget)
        if options is not None:
            if value in options:
                return None
            return f"{label} = {shown(value)} is not one of {', '.join(map(str, options))}"
        bounds = self.allowed_range(name)
        if bounds is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{label} = {shown(value)} is not a number"
        if isinstance(value, float) and not math.isfinite(value):
            return f"{label} = {shown(value)} is not a finite number"
        low, high = bounds
        if not low <= value <= high:
            return f"{label} = {shown(value)} is outside [{shown(low)}, {shown(high)}]"
        return None

    def refusals(self, settings: dict) -> list[str]:
        """Why each setting of ``settings`` that may not be computed with is refused."""
        return [reason for name, value in settings.items() if name in self.sliders
                for reason in [self.check_setting(name, value)] if reason is not None]

    def _undo_refused(self) -> bool:
        """Put every control holding a refused value back; returns whether there was one."""
        refused = []
        for name, w in self.sliders.items():
            reason = self.check_setting(name, w.value)
            if reason is None:
                continue
            refused.append(reason)
            self._undoing = True
            try:
                bounds = self.allowed_range(name)
                if bounds is not None and choices(w) is None:
                    self._set_range(w, *bounds)
                w.value = self._good[name]
            finally:
                self._undoing = False
        if refused:
            self.controls.say(html.escape("refused: " + "; ".join(refused)))
        return bool(refused)

    @staticmethod
    def _set_range(w, low: float, high: float) -> None:
        if low > w.max:
            w.max, w.min = high, low
        else:
            w.min, w.max = low, high
