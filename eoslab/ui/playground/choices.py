"""The playground's vocabulary: its menus, their :class:`TrainConfig`, each threshold.

Every choice of the playground is a :class:`~eoslab.core.config.TrainConfig` field, so a
run is :func:`eoslab.run` of :func:`config_from` of the controls' values and the store
keys it like any other run. An invalid combination is refused by ``TrainConfig`` itself
(a ``ValueError`` naming the value and what is allowed) before anything runs.

The curvature drawn against each optimiser's threshold (:func:`edge_rows`), on a local
quadratic with Hessian :math:`H` and step size :math:`\\eta` (the row's scheduled one):

=======================  ==============================  ==================================
optimiser                curvature                       threshold
=======================  ==============================  ==================================
GD, SGD, label-noise     :math:`\\lambda_{\\max}(H)`       :math:`2/\\eta` (momentum
                                                         :math:`\\beta`: :math:`(2+2\\beta)/\\eta`)
heavy ball               :math:`\\lambda_{\\max}(H)`       :math:`(2+2\\beta)/\\eta`
Nesterov                 :math:`\\lambda_{\\max}(H)`       :math:`(2+2\\beta)/((1+2\\beta)\\eta)`
Adam, AdamW              :math:`\\lambda_{\\max}(P^{-1}H)` :math:`(2+2\\beta_1)/((1-\\beta_1)\\eta)`
RMSprop                  :math:`\\lambda_{\\max}(P^{-1}H)` :math:`2/\\eta`
SAM (radius ρ)           :math:`\\lambda_{\\max}(H)`       the SAM-edge (below)
normalised GD            :math:`\\lambda_{\\max}(H)`       :math:`2\\lVert g\\rVert/\\eta`
=======================  ==============================  ==================================

(:mod:`eoslab.curvature.sharpness`; Cohen et al. 2021, arXiv 2103.00065 and 2207.14484;
Long and Bartlett 2024, arXiv 2309.12488, :func:`eoslab.optimizers.sam.sam_edge`.)
The SAM-edge is :math:`\\frac{\\lVert g\\rVert}{2\\rho}(\\sqrt{1+8\\rho/(\\eta\\lVert g
\\rVert)}-1)`, with :math:`g` the row's full-batch gradient.
Normalised GD :math:`\\theta \\leftarrow \\theta - \\eta g/\\lVert g\\rVert` is GD with the
effective step size :math:`\\eta/\\lVert g\\rVert`, so the line drawn is GD's threshold at
that step size, :math:`2\\lVert g\\rVert/\\eta`, from the row's gradient norm.

Example:
    >>> config_from({**DEFAULTS, "optimizer": "adam", "lr": 0.001}).optimizer
    'adam'
    >>> edge_rows(config_from({**DEFAULTS, "lr": 0.5}),
    ...           [{"step": 0, "lr": 0.5, "sharpness": 3.0}])[1]["value"]
    4.0
"""

from __future__ import annotations

from eoslab.core.config import TrainConfig
from eoslab.curvature.sharpness import threshold
from eoslab.optimizers.sam import sam_edge

__all__ = ["DATASETS", "DEFAULTS", "LOSSES", "MODELS", "OPTIMIZERS", "SCHEDULES",
           "config_from", "edge_rows", "relevant", "run_label"]

DATASETS = (("digits (8x8 images)", "digits"), ("teacher (regression)", "teacher"),
            ("sine (regression)", "sine"), ("moons", "moons"), ("circles", "circles"),
            ("quadratic (linear model)", "quadratic"))
MODELS = (("fc tanh", "fc-tanh"), ("fc relu", "fc-relu"), ("fc elu", "fc-elu"),
          ("small CNN (digits)", "cnn"), ("linear", "linear"))
LOSSES = (("MSE", "mse"), ("cross-entropy", "ce"))
OPTIMIZERS = (("GD", "gd"), ("heavy ball", "momentum"), ("Nesterov", "nesterov"),
              ("SGD (minibatch)", "sgd"), ("Adam", "adam"), ("AdamW", "adamw"),
              ("RMSprop", "rmsprop"), ("SAM", "sam"), ("normalised GD", "ngd"),
              ("label-noise SGD", "label-noise"))
SCHEDULES = ("constant", "cosine", "step", "linear-warmup", "cosine-restarts", "triangular")

DEFAULTS = {"dataset": "digits", "n_train": 1000, "model": "fc-tanh", "width": 200,
            "depth": 2, "loss": "mse", "optimizer": "gd", "lr": 0.1, "momentum": 0.9,
            "beta1": 0.9, "beta2": 0.999, "weight_decay": 0.0, "rho": 0.05, "sigma": 0.1,
            "batch_size": 100, "schedule": "constant", "steps": 500, "sharpness_every": 20}
"""The controls' first values: the digits default of :class:`TrainConfig` (fc-tanh 200x2,
MSE, GD) with sharpness every 20 steps."""

_USES = {"momentum": ("momentum", "nesterov", "rmsprop", "sgd", "sam", "label-noise"),
         "beta1": ("adam", "adamw"), "beta2": ("adam", "adamw", "rmsprop"),
         "weight_decay": ("gd", "sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop",
                          "sam", "label-noise"),
         "rho": ("sam",), "sigma": ("label-noise",), "batch_size": ("sgd", "label-noise")}


def relevant(name: str, optimizer: str) -> bool:
    """Whether hyperparameter ``name`` applies to ``optimizer`` (the others are hidden)."""
    return optimizer in _USES.get(name, (optimizer,))


def config_from(values: dict) -> TrainConfig:
    """The :class:`TrainConfig` the controls' ``values`` name (``ValueError`` if invalid).

    Hyperparameters that do not apply to the chosen optimiser are left at their defaults,
    so that two runs differing only in a hidden control are the same run.
    """
    opt = values["optimizer"]
    fields = {"dataset": values["dataset"], "model": values["model"], "loss": values["loss"],
              "optimizer": opt, "lr": values["lr"], "schedule": values["schedule"],
              "steps": values["steps"], "sharpness_every": values["sharpness_every"],
              "record_every": max(1, min(10, values["sharpness_every"] or 10))}
    if values["dataset"] != "quadratic":
        fields["n_train"] = values["n_train"]
    if values["model"].startswith("fc-") or values["model"] == "cnn":
        fields["width"], fields["depth"] = values["width"], values["depth"]
    if relevant("momentum", opt) and opt != "rmsprop" or opt == "rmsprop" and values["momentum"]:
        fields["momentum"] = values["momentum"]
    if relevant("beta1", opt):
        fields["betas"] = (values["beta1"], values["beta2"])
    elif opt == "rmsprop":
        fields["betas"] = (0.9, values["beta2"])
    if relevant("weight_decay", opt):
        fields["weight_decay"] = values["weight_decay"]
    if opt == "sam":
        fields["optimizer_options"] = {"rho": values["rho"]}
    if opt == "label-noise":
        fields["optimizer_options"] = {"sigma": values["sigma"]}
    if relevant("batch_size", opt):
        fields["batch_size"] = values["batch_size"]
    return TrainConfig(**fields)


def _edge(config: TrainConfig, row: dict) -> tuple[str, float | None, float | None]:
    """``(curve name, curvature, threshold)`` of one history row of a run of ``config``."""
    opt, lr = config.optimizer, float(row.get("lr", config.lr))
    if opt in ("adam", "adamw"):
        return ("preconditioned sharpness", row.get("precond_sharpness"),
                threshold("adam", lr, config.betas[0]))
    if opt == "rmsprop":
        return ("preconditioned sharpness", row.get("precond_sharpness"),
                threshold("rmsprop", lr, config.momentum))
    grad = row.get("grad_norm")
    if opt == "sam":
        rho = float(config.optimizer_options.get("rho", 0.05))
        edge = sam_edge(float(grad), lr, rho) if grad is not None else None
        return "sharpness", row.get("sharpness"), edge
    if opt == "ngd":
        return "sharpness", row.get("sharpness"), 2 * grad / lr if grad is not None else None
    beta = config.momentum or (0.9 if opt in ("momentum", "nesterov") else 0.0)
    kind = "nesterov" if opt == "nesterov" else "momentum" if beta else "gd"
    return "sharpness", row.get("sharpness"), threshold(kind, lr, beta)


THRESHOLD_NAMES = {"gd": "2/η", "sgd": "2/η", "label-noise": "2/η", "momentum": "(2+2β)/η",
                   "nesterov": "Nesterov's (2+2β)/((1+2β)η)", "adam": "Adam's (2+2β₁)/((1−β₁)η)",
                   "adamw": "Adam's (2+2β₁)/((1−β₁)η)", "rmsprop": "RMSprop's 2/η",
                   "sam": "SAM-edge", "ngd": "2‖g‖/η"}


def edge_rows(config: TrainConfig, history: list[dict], run: str = "") -> list[dict]:
    """Chart rows ``{run, step, curve, value}``: the curvature and its threshold per row."""
    out = []
    name = THRESHOLD_NAMES.get(config.optimizer, "threshold")
    for row in history:
        if row.get("sharpness") is None:
            continue
        curve, value, edge = _edge(config, row)
        if value is not None:
            out.append({"run": run, "step": row["step"], "curve": curve, "value": value})
        if edge is not None:
            out.append({"run": run, "step": row["step"], "curve": f"threshold {name}",
                        "value": edge})
    return out


_SHOWN = ("dataset", "n_train", "model", "width", "depth", "loss", "optimizer", "lr",
          "momentum", "betas", "weight_decay", "optimizer_options", "batch_size",
          "schedule", "steps")


def run_label(config: TrainConfig, others: list[TrainConfig]) -> str:
    """A short label naming the settings in which ``config`` differs from ``others``.

    The optimiser and the step size are always named.

    >>> a, b = TrainConfig(lr=0.1), TrainConfig(lr=0.1, width=64)
    >>> run_label(b, [a, b])
    'gd lr=0.1 width=64'
    """
    mine = config.to_dict()
    parts = [config.optimizer, f"lr={config.lr:g}"]
    for name in _SHOWN:
        if name in ("optimizer", "lr"):
            continue
        if any(other.to_dict()[name] != mine[name] for other in others):
            value = mine[name]
            if isinstance(value, dict):
                parts.extend(f"{k}={v:g}" for k, v in value.items())
            else:
                parts.append(f"{name}={value if value is not None else 'full'}")
    return " ".join(parts)
