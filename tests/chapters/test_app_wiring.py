"""Every chapter app is a thin ChapterApp: it hands its preset and settings to its experiment.

The science of each chapter is tested through its widget-free experiment in
``test_chNN_*.py``; here a stand-in experiment checks only the wiring, for all chapters
alike: the settings the sliders show reach the experiment, streamed datasets reach the
chart, a divergence reaches the status line, and a slider move runs again.
"""

import importlib
import inspect

import pytest

from eoslab.chapters.presets import CHAPTER_SLUGS
from eoslab.ui.app import ChapterApp

NUMBERS = sorted(CHAPTER_SLUGS)


def app_class(number: str) -> type[ChapterApp]:
    module = importlib.import_module(f"eoslab.chapters.ch{number}_{CHAPTER_SLUGS[number]}.app")
    found = [obj for obj in vars(module).values() if inspect.isclass(obj)
             and issubclass(obj, ChapterApp) and obj is not ChapterApp
             and obj.__module__ == module.__name__]
    assert len(found) == 1, f"chapter {number}: one ChapterApp subclass expected, got {found}"
    return found[0]


def test_every_chapter_has_an_app_on_the_one_lifecycle():
    assert NUMBERS == [f"{n:02d}" for n in range(1, 20)]
    for number in NUMBERS:
        cls = app_class(number)
        assert cls.CHAPTER == number and cls.experiment is not None
        for name in ("run", "stop", "wait", "set", "_on_preset", "_on_setting", "_job",
                     "show_stored", "settings", "key"):
            assert getattr(cls, name) is getattr(ChapterApp, name), (
                f"{cls.__name__}.{name} overrides the lifecycle")


@pytest.mark.parametrize("number", NUMBERS)
def test_app_hands_preset_and_settings_to_its_experiment(number, monkeypatch):
    cls = app_class(number)
    seen = []

    def stand_in(preset, settings, *, emit=None, stop=None):
        seen.append((preset, dict(settings)))
        emit({}, 1)
        return {"status": "diverged", "datasets": {},
                "diverged": {"step": 3, "loss": 1e9, "lr": float(settings.get("lr", 1.0)),
                             "stage": "stand-in"}}

    monkeypatch.setattr(cls, "experiment", staticmethod(stand_in))
    app = cls("quick", store=False, chart_mode="jupyter", auto_run=False)
    app.run(wait=True)
    preset, settings = seen[-1]
    assert preset is app.preset and preset.name == "quick"
    assert settings == app.settings() and "lr" in settings
    status = app.controls.status.value  # a chapter may phrase it, but names step and fact
    assert "diverged" in status and "step 3" in status, status
    assert app.result["status"] == "diverged"
    lr = app.sliders["lr"]
    target = lr.min + 0.5 * (lr.max - lr.min)
    before = len(seen)
    app.auto_run = True
    app.set(lr=target)
    app.wait(60)
    assert len(seen) == before + 1 and seen[-1][1]["lr"] == app.settings()["lr"]
