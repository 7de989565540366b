"""Presets: names, EOSLAB_QUICK selection, and that every preset builds a valid config."""

import pytest

from eoslab.chapters.presets import (
    CHAPTER_SLUGS,
    CIFAR_NEEDS,
    PAPER_SETTINGS,
    PRESET_NAMES,
    chapter_id,
    get_preset,
    preset_for,
    quick_mode,
)
from eoslab.core.config import TrainConfig


@pytest.mark.parametrize("value, quick", [("1", True), ("yes", True), ("0", False),
                                          ("", False), ("false", False)])
def test_preset_for_follows_eoslab_quick(monkeypatch, value, quick):
    monkeypatch.setenv("EOSLAB_QUICK", value)
    assert quick_mode() is quick
    assert preset_for("02").name == ("quick" if quick else "default")


def test_preset_for_without_the_variable_is_default(monkeypatch):
    monkeypatch.delenv("EOSLAB_QUICK", raising=False)
    assert preset_for("01_quadratic_stability").name == "default"


@pytest.mark.parametrize("number", sorted(CHAPTER_SLUGS))
def test_every_chapter_has_all_three_presets_with_labels(number):
    for name in PRESET_NAMES:
        preset = get_preset(number, name)
        assert (preset.chapter, preset.name) == (number, name)
        assert preset.label.startswith(name)


def test_chapter_names_resolve_and_unknown_ones_are_rejected():
    assert chapter_id("edge_of_stability") == "02"
    assert chapter_id(2) == "02"
    with pytest.raises(ValueError, match="'99_nope'"):
        chapter_id("99_nope")


def test_presets_are_read_only_and_name_missing_keys():
    preset = get_preset("02", "default")
    with pytest.raises(TypeError):
        preset.values["lr"] = 1.0
    with pytest.raises(KeyError, match="no setting 'nope'"):
        preset["nope"]


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_eos_presets_make_valid_train_configs(name):
    preset = get_preset("02", name)
    run = {k: getattr(preset, k) for k in ("optimizer", "momentum", "steps", "record_every",
                                           "sharpness_every")}
    for ratio in preset.lr_ratios:
        config = preset.net.train_config(lr=preset.lr * ratio, **run)
        assert isinstance(config, TrainConfig) and config.n_train == preset.net.n_train


def test_paper_preset_says_what_it_needs():
    paper = get_preset("02", "paper")
    assert paper.net.dataset == "cifar10-5k" and paper.needs == CIFAR_NEEDS
    assert "torchvision" in paper.needs and "GPU" in paper.label


@pytest.mark.parametrize("number", sorted(CHAPTER_SLUGS))
def test_paper_presets_are_labelled_honestly(number):
    """`paper:` only where the preset is the paper's own setting (PAPER_SETTINGS), else
    `paper-like:`; a time on a GPU is an estimate (none has been measured on a GPU)."""
    label = get_preset(number, "paper").label
    kind = "paper" if number in PAPER_SETTINGS else "paper-like"
    assert label.split(":")[0] == kind, f"chapter {number}: {label!r} should start {kind}:"
    for name in PRESET_NAMES:
        label = get_preset(number, name).label
        if "GPU" in label:
            assert "estimate" in label, f"chapter {number}/{name}: {label!r}"


@pytest.mark.parametrize("number", ["14", "15", "16", "17", "18"])
def test_preset_labels_fit_the_dropdown(number):
    """The 520 px preset dropdown shows about 60 characters of its label."""
    for name in PRESET_NAMES:
        label = get_preset(number, name).label
        assert len(label) <= 60, f"chapter {number}/{name}: {len(label)} chars: {label!r}"
