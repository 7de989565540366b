"""Chapter 02's figure: loss and sharpness of several step sizes against their edges.

Cohen, Kaur, Li, Kolter, Talwalkar (ICLR 2021, arXiv 2103.00065). Built, as every eoslab
figure, from a layout on named datasets and a ``*_data`` function (see
:mod:`eoslab.ui.plots`), so the live app swaps only the datasets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import altair as alt

from eoslab.ui.plots import HEIGHT, WIDTH, clean, color_by, with_datasets, y_axis

__all__ = ["eos_chart", "eos_data", "eos_layout", "run_label", "threshold_rows"]


def run_label(lr: float, momentum: float = 0.0) -> str:
    """The legend label of a run: ``'eta = 0.2'`` (and ``beta`` when there is momentum).

    >>> run_label(0.2), run_label(0.1, 0.9)
    ('eta = 0.2', 'eta = 0.1, beta = 0.9')
    """
    text = f"eta = {lr:.4g}"
    return text + (f", beta = {momentum:.3g}" if momentum else "")


def threshold_rows(lrs: Iterable[float], momentum: float = 0.0) -> list[dict]:
    """One row per run with its stability threshold :math:`(2 + 2\\beta)/\\eta`.

    >>> threshold_rows([0.5])
    [{'run': 'eta = 0.5', 'lr': 0.5, 'threshold': 4.0}]
    """
    return [{"run": run_label(lr, momentum), "lr": lr, "threshold": (2 + 2 * momentum) / lr}
            for lr in lrs]


def eos_layout(momentum: float = 0.0):
    """Four panels of the edge-of-stability runs.

    Loss and sharpness vs step with :math:`(2+2\\beta)/\\eta` lines, sharpness divided by
    its threshold (1 is the edge), and loss vs time :math:`\\eta t`.

    Datasets: ``history`` (run, lr, step, time, loss, sharpness, ratio), ``thresholds``
    (run, lr, threshold) and ``crossings`` (run, lr, step, time): where each run's
    sharpness first reaches its threshold, the time after which GD can no longer follow
    gradient flow (Cohen et al. 2021, section 3).
    """
    base = alt.Chart(alt.Data(name="history"))
    edge = "(2+2beta)/eta" if momentum else "2/eta"
    loss = base.mark_line().encode(
        x=alt.X("step:Q"), y=y_axis("loss", "train loss", True), color=color_by()
    ).transform_filter("datum.loss > 0").properties(title="train loss")
    sharp_points = base.mark_line(point=True).encode(
        x="step:Q", y=alt.Y("sharpness:Q", title="sharpness (top Hessian eigenvalue)"),
        color=color_by()).transform_filter("isValid(datum.sharpness)")
    rules = alt.Chart(alt.Data(name="thresholds")).mark_rule(strokeDash=[6, 4]).encode(
        y="threshold:Q", color=color_by())
    sharp = alt.layer(sharp_points, rules).properties(
        title=f"sharpness; dashed: {edge}")
    ratio = alt.layer(
        base.mark_line(point=True).encode(
            x="step:Q", y=alt.Y("ratio:Q", title=f"sharpness / ({edge})"), color=color_by()
        ).transform_filter("isValid(datum.ratio)"),
        alt.Chart(alt.Data(values=[{"one": 1.0}])).mark_rule(color="black").encode(y="one:Q"),
    ).properties(title="1 = the edge of stability")
    flow = alt.layer(
        base.mark_line().encode(
            x=alt.X("time:Q", title="time eta * step"), y=y_axis("loss", "train loss", True),
            color=color_by()).transform_filter("datum.loss > 0"),
        alt.Chart(alt.Data(name="crossings")).mark_rule(strokeDash=[2, 3]).encode(
            x="time:Q", color=color_by()),
    ).properties(title="loss vs time; dotted: each run reaches its edge")
    panels = [p.properties(width=WIDTH, height=HEIGHT) for p in (loss, sharp, ratio, flow)]
    return alt.vconcat(alt.hconcat(panels[0], panels[1]), alt.hconcat(panels[2], panels[3]))


def eos_data(histories: Mapping[float, Sequence[dict]], momentum: float = 0.0) -> dict:
    """Datasets for :func:`eos_layout` from ``{lr: history rows}``."""
    data, crossings = [], []
    for lr, history in histories.items():
        edge = (2 + 2 * momentum) / lr
        label, crossed = run_label(lr, momentum), False
        for row in history:
            sharpness = clean(row.get("sharpness"))
            data.append({"run": label, "lr": lr, "step": row["step"],
                         "time": lr * row["step"], "loss": clean(row.get("loss")),
                         "sharpness": sharpness,
                         "ratio": None if sharpness is None else sharpness / edge})
            if not crossed and sharpness is not None and sharpness >= edge:
                crossed = True
                crossings.append({"run": label, "lr": lr, "step": row["step"],
                                  "time": lr * row["step"]})
    return {"history": data, "thresholds": threshold_rows(histories, momentum),
            "crossings": crossings}


def eos_chart(histories: Mapping[float, Sequence[dict]], momentum: float = 0.0):
    """The edge-of-stability figure for several step sizes (Cohen et al., ICLR 2021)."""
    return with_datasets(eos_layout(momentum), eos_data(histories, momentum))
