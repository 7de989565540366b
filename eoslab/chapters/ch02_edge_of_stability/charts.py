"""Chapter 02's figure: loss and sharpness of several step sizes against their edges.

Cohen, Kaur, Li, Kolter, Talwalkar (ICLR 2021, arXiv 2103.00065). Built, as every eoslab
figure, from a layout on named datasets and a ``*_data`` function (see
:mod:`eoslab.ui.plots`), so the live app swaps only the datasets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import altair as alt

from eoslab.ui.plots import HEIGHT, WIDTH, clean, color_by, with_datasets, y_axis

__all__ = ["FLOW", "edge_name", "eos_chart", "eos_data", "eos_layout", "run_label",
           "threshold_rows"]


FLOW = "gradient flow (RK45)"


def run_label(lr: float, momentum: float = 0.0) -> str:
    """The legend label of a run: ``'η = 0.2'`` (and ``β`` when there is momentum).

    >>> run_label(0.2), run_label(0.1, 0.9)
    ('η = 0.2', 'η = 0.1, β = 0.9')
    """
    text = f"η = {lr:.4g}"
    return text + (f", β = {momentum:.3g}" if momentum else "")


def edge_name(momentum: float = 0.0) -> str:
    """``'2/η'``, or ``'(2+2β)/η'`` with momentum."""
    return "(2+2β)/η" if momentum else "2/η"


def threshold_rows(lrs: Iterable[float], momentum: float = 0.0) -> list[dict]:
    """One row per run with its stability threshold :math:`(2 + 2\\beta)/\\eta`.

    >>> threshold_rows([0.5])
    [{'run': 'η = 0.5', 'lr': 0.5, 'threshold': 4.0}]
    """
    return [{"run": run_label(lr, momentum), "lr": lr, "threshold": (2 + 2 * momentum) / lr}
            for lr in lrs]


def eos_layout(momentum: float = 0.0, time_max: float | None = None):
    """Four panels of the edge-of-stability runs.

    Loss and sharpness vs step with :math:`(2+2\\beta)/\\eta` lines, sharpness divided by
    its threshold (1 is the edge), and loss vs time :math:`\\eta t/(1-\\beta)` beside the
    gradient flow's loss.

    Datasets: ``history`` (run, lr, step, time, loss, sharpness, ratio), ``thresholds``
    (run, lr, threshold), ``crossings`` (run, lr, step, time): where each run's
    sharpness first reaches its threshold, the time after which GD can no longer follow
    gradient flow (Cohen et al. 2021, section 3), and ``flow`` (run, time, loss): the
    gradient flow from the same weights.
    """
    base = alt.Chart(alt.Data(name="history"))
    edge = edge_name(momentum)
    runs = color_by("run", "GD step size η" + (", momentum β" if momentum else ""))
    loss = base.mark_line().encode(
        x=alt.X("step:Q"), y=y_axis("loss", "train loss", True), color=runs
    ).transform_filter("datum.loss > 0").properties(title="train loss")
    sharp_points = base.mark_line(point=True).encode(
        x="step:Q", y=alt.Y("sharpness:Q", title="sharpness λ (top Hessian eigenvalue)"),
        color=runs).transform_filter("isValid(datum.sharpness)")
    rules = alt.Chart(alt.Data(name="thresholds")).mark_rule(strokeDash=[6, 4]).encode(
        y="threshold:Q", color=runs)
    sharp = alt.layer(sharp_points, rules).properties(title=f"sharpness λ; dashed: {edge}")
    ratio = alt.layer(
        base.mark_line(point=True).encode(
            x="step:Q", y=alt.Y("ratio:Q", title=f"λ / ({edge})"), color=runs
        ).transform_filter("isValid(datum.ratio)"),
        alt.Chart(alt.Data(values=[{"one": 1.0}])).mark_rule(color="black").encode(y="one:Q"),
    ).properties(title="1 = the edge of stability")
    time = "time ηk/(1−β)" if momentum else "time ηk"
    flow = alt.layer(
        base.mark_line().encode(
            x=alt.X("time:Q", title=time, scale=alt.Scale(
                domain=[0, time_max] if time_max else alt.Undefined)),
            y=y_axis("loss", "train loss", True),
            color=runs).transform_filter("datum.loss > 0"),
        alt.Chart(alt.Data(name="flow")).mark_line(
            strokeDash=[6, 3], strokeWidth=2, color="black").encode(
            x="time:Q", y="loss:Q").transform_filter("datum.loss > 0"),
        alt.Chart(alt.Data(name="crossings")).mark_rule(strokeDash=[2, 3]).encode(
            x="time:Q", color=runs),
    ).properties(title=["loss vs time; black dashed: gradient flow (RK45)",
                        "dotted: where each run reaches its edge"])
    panels = [p.properties(width=WIDTH, height=HEIGHT) for p in (loss, sharp, ratio, flow)]
    return alt.vconcat(alt.hconcat(panels[0], panels[1]), alt.hconcat(panels[2], panels[3]))


def eos_data(histories: Mapping[float, Sequence[dict]], momentum: float = 0.0,
             flow: Sequence[dict] = ()) -> dict:
    """Datasets for :func:`eos_layout` from ``{lr: history rows}`` and the flow's rows.

    A run's time is :math:`\\eta k/(1-\\beta)`: heavy ball with step :math:`\\eta` and
    momentum :math:`\\beta` moves like GD with step :math:`\\eta/(1-\\beta)`.
    """
    data, crossings = [], []
    for lr, history in histories.items():
        edge = (2 + 2 * momentum) / lr
        label, crossed = run_label(lr, momentum), False
        scale = lr / (1 - momentum)
        for row in history:
            sharpness = clean(row.get("sharpness"))
            data.append({"run": label, "lr": lr, "step": row["step"],
                         "time": scale * row["step"], "loss": clean(row.get("loss")),
                         "sharpness": sharpness,
                         "ratio": None if sharpness is None else sharpness / edge})
            if not crossed and sharpness is not None and sharpness >= edge:
                crossed = True
                crossings.append({"run": label, "lr": lr, "step": row["step"],
                                  "time": scale * row["step"]})
    return {"history": data, "thresholds": threshold_rows(histories, momentum),
            "crossings": crossings,
            "flow": [{"time": r["time"], "loss": clean(r["loss"])} for r in flow]}


def eos_chart(histories: Mapping[float, Sequence[dict]], momentum: float = 0.0,
              flow: Sequence[dict] = (), time_max: float | None = None):
    """The edge-of-stability figure for several step sizes (Cohen et al., ICLR 2021).

    ``time_max`` fixes the time axis to ``[0, time_max]`` (the largest step size's run),
    so that a layer with no rows yet (no run has reached its edge) draws no empty extent.
    """
    return with_datasets(eos_layout(momentum, time_max),
                         eos_data(histories, momentum, flow))
