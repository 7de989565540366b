"""Chapter 16's figure: sharpness and its edges | sharpness / own edge | loss | m-sharpness.

:func:`sam_layout` builds the Altair layout on named datasets and :func:`sam_datasets`
fills them from a (partial) :func:`~eoslab.chapters.ch16_sam.sam_edge.sam_experiment`
result, so a live app swaps only the datasets (:mod:`eoslab.ui.plots`).

Example:
    >>> sam_datasets({"lr": 0.5, "runs": {"0.0": [{"step": 0, "loss": 1.0, "sharpness": 3.0,
    ...                                            "sam_edge": 4.0}]}})["sharp"]
    [{'run': 'GD (ρ = 0)', 'step': 0, 'sharpness': 3.0, 'ratio': 0.75}]
"""

from __future__ import annotations

import altair as alt

from eoslab.ui.plots import HEIGHT, WIDTH

__all__ = ["partial_datasets", "run_name", "sam_datasets", "sam_layout"]


def run_name(rho: float) -> str:
    """The legend name of a full-batch run of radius ``rho``.

    >>> run_name(0.0), run_name(0.05)
    ('GD (ρ = 0)', 'SAM ρ = 0.05')
    """
    return "GD (ρ = 0)" if rho == 0 else f"SAM ρ = {rho:g}"


def sam_layout():
    """Sharpness with 2/η and the SAM-edge | sharpness / SAM-edge | loss | m-sharpness."""
    sharp = alt.Chart(alt.Data(name="sharp")).mark_line(point=True).encode(
        x="step:Q", y=alt.Y("sharpness:Q", title="sharpness S (top Hessian eigenvalue)"),
        color=alt.Color("run:N", title="full-batch run"))
    edge = alt.Chart(alt.Data(name="curves")).mark_line(strokeDash=[4, 3], opacity=0.7).encode(
        x="step:Q", y="sam_edge:Q", color=alt.Color("run:N", title="full-batch run"))
    gd = alt.Chart(alt.Data(name="gd_edge")).mark_rule(color="black", strokeDash=[8, 4]).encode(
        y="edge:Q")
    panel1 = alt.layer(sharp, edge, gd).properties(
        width=WIDTH, height=HEIGHT,
        title="sharpness S (dots) vs 2/η (black) and each run's SAM-edge (dashed)")
    ratio = alt.Chart(alt.Data(name="sharp")).mark_line(point=True).encode(
        x="step:Q", y=alt.Y("ratio:Q", title="S / own edge"),
        color=alt.Color("run:N", title="full-batch run")).properties(
        width=WIDTH, height=HEIGHT, title="each run against its own edge (1 = at the edge)")
    loss = alt.Chart(alt.Data(name="curves")).mark_line().encode(
        x="step:Q", y=alt.Y("loss:Q", title="train loss", scale=alt.Scale(type="log")),
        color=alt.Color("run:N", title="full-batch run")).properties(
        width=WIDTH, height=HEIGHT, title="full-batch train loss")
    bars = alt.Chart(alt.Data(name="m_runs")).mark_bar().encode(
        x=alt.X("label:N", title=None, sort=None),
        y=alt.Y("sharpness:Q", title="final sharpness"),
        tooltip=["label:N", "sharpness:Q", "test_acc:Q", "test_loss:Q"]).properties(
        width=WIDTH, height=HEIGHT, title="minibatch SAM: final sharpness S for each m")
    return alt.vconcat(alt.hconcat(panel1, ratio), alt.hconcat(loss, bars))


def sam_datasets(result: dict) -> dict:
    """All datasets of :func:`sam_layout` from a (partial) pipeline result."""
    lr = result.get("lr")
    curves, sharp = [], []
    for key, rows in result.get("runs", {}).items():
        rho = float(key)
        for r in rows:
            row = {"run": run_name(rho), "step": r["step"], "loss": r.get("loss")}
            if r.get("sam_edge") is not None:
                row["sam_edge"] = r["sam_edge"]
            curves.append(row)
            if r.get("sharpness") is not None:
                point = {"run": row["run"], "step": r["step"], "sharpness": r["sharpness"]}
                if r.get("sam_edge"):
                    point["ratio"] = r["sharpness"] / r["sam_edge"]
                sharp.append(point)
    m_rows = [{"label": f"m = {r['m']}" if r["m"] else "SGD (no SAM)",
               "sharpness": r["sharpness"], "test_acc": r.get("test_acc"),
               "test_loss": r.get("test_loss")}
              for r in result.get("m_runs", [])]
    return {"curves": curves, "sharp": sharp, "m_runs": m_rows,
            "gd_edge": [{"edge": 2.0 / lr}] if lr else []}


def partial_datasets(partial: dict, lr: float) -> dict:
    """The datasets of what the pipeline has streamed so far (full-batch rows or m-runs)."""
    if "runs" in partial:
        return sam_datasets({"lr": lr, **partial})
    return {"m_runs": sam_datasets(partial)["m_runs"]}
