"""Many step sizes (and seeds) in one batched run.

A chapter that lets a slider pick the step size :math:`\\eta` should not train while the
slider moves: it precomputes a whole range of :math:`\\eta` at once and the slider only
selects among finished runs.  :func:`sweep` trains ``C`` copies of one architecture,
copy :math:`c` with its own step size :math:`\\eta_c` and initialisation seed, as *one*
computation: the copies' parameters are stacked along a leading dimension
(``torch.func.stack_module_state``) and every layer is one batched matrix product over
all copies: for a plain MLP through :func:`eoslab.speed.stacked_mlp.stacked_forward`
(feature-major activations, autograd for the gradient of the sum of the copies'
independent losses), for any other model (or with the speed switch ``EOSLAB_SPEED=0``)
as ``torch.func`` transforms of ``functional_call`` batched by ``vmap``
(:mod:`eoslab.core.batched_model`).  The update is the one of ``torch.optim.SGD`` written on
the stacked tensors with a step-size *vector* (heavy ball as in :mod:`eoslab.core.optim`):

.. math::

    d_c = g_c + \\mu\\,\\theta_c, \\qquad b_c \\leftarrow \\beta b_c + d_c, \\qquad
    \\theta_c \\leftarrow \\theta_c - \\eta_c(t)\\,(b_c \\text{ or } d_c + \\beta b_c).

(``torch.optim.SGD`` takes one scalar step size per parameter group, in its foreach and
fused paths too, so copies with different step sizes would be separate groups of
separate tensors, one update call each; here one elementwise kernel per parameter name
updates every copy, and masks the diverged ones.)

Each copy reproduces :func:`eoslab.core.train.fit` on ``config.replace(lr=..., model_seed=...)``
step for step (up to floating-point reassociation): the same history rows (``step, lr,
loss, acc, grad_norm, weight_norm, test_loss, test_acc, sharpness, hvps, time``) at the
same steps, and the same divergence rule (the loss at :math:`\\theta_t` non-finite or above
``divergence_factor`` times the copy's first loss), detected at the exact step.  A copy
that diverges is frozen at its last parameters with a finite loss and never poisons the
others; it leaves the batch at the next recording step, so the rest run faster.

Sharpness :math:`\\lambda_{\\max}(\\nabla^2 L(\\theta_c))` of every copy is tracked by a
batched Lanczos iteration (Lanczos 1950) on forward-over-reverse Hessian-vector products
(``vmap`` over copies of ``jvp`` of ``grad``, Pearlmutter 1994), warm-started from the
previous top eigenvectors; see :func:`eoslab.curvature.eigen_batched.batched_top_eigen`.

The loop reads values from the device only at the recording cadence.  Results go to the
store under each copy's :meth:`TrainConfig.key`, so :func:`eoslab.core.experiment.run` of one
copy's config finds the sweep's result (and a sweep reuses stored runs).

Example:
    >>> from eoslab.core.config import TrainConfig
    >>> cfg = TrainConfig(dataset="sine", width=8, steps=6, record_every=3, device="cpu")
    >>> res = sweep(cfg, lrs=[0.1, 1e4], store=False)
    >>> [run.status for run in res.runs], res.configs[1].lr
    (['finished', 'diverged'], 10000.0)
    >>> [row["step"] for row in res.runs[0].history]
    [0, 3, 6]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from eoslab.core.batched import fit_batched
from eoslab.core.config import TrainConfig
from eoslab.core.data import load_dataset
from eoslab.core.models import build_model
from eoslab.core.optim import check_lr, make_optimizer, make_scheduler
from eoslab.core.store import RunStore
from eoslab.core.train import Run
from eoslab.curvature.eigen_batched import batched_top_eigen

__all__ = ["SWEEP_OPTIMIZERS", "SweepResult", "batched_top_eigen", "check_sweepable",
           "fit_batched", "sweep"]

SWEEP_OPTIMIZERS = ("gd", "sgd", "momentum", "nesterov")


@dataclass
class SweepResult:
    """The runs of a sweep, one per copy, with the config each one equals.

    ``configs[i]`` is ``config.replace(lr=..., model_seed=...)`` of copy ``i`` (seeds
    outer, step sizes inner) and ``runs[i]`` what :func:`eoslab.core.experiment.run` of it
    returns.
    """

    configs: list[TrainConfig]
    runs: list[Run]
    seconds: float = 0.0
    reused: int = 0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self):
        return iter(zip(self.configs, self.runs))

    def run_for(self, lr: float, model_seed: int | None = None) -> Run:
        """The run of the copy with step size ``lr`` (and ``model_seed`` if given)."""
        for cfg, run in self:
            if cfg.lr == lr and (model_seed is None or cfg.model_seed == model_seed):
                return run
        raise ValueError(f"no copy with lr={lr!r}, model_seed={model_seed!r}; the sweep has "
                         f"{sorted({(c.lr, c.model_seed) for c in self.configs})}")


# ---------------------------------------------------------------- from a config
def _schedule_table(config: TrainConfig, lr: float) -> list[float]:
    """The step size ``fit`` uses at each step 0..steps (the real torch scheduler, stepped)."""
    if config.schedule == "constant":
        return [lr] * (config.steps + 1)
    dummy = torch.zeros(1, requires_grad=True)
    opt = make_optimizer(config.optimizer, [dummy], lr, momentum=config.momentum,
                         weight_decay=config.weight_decay)
    scheduler = make_scheduler(config.schedule, opt, config.steps, config.schedule_options)
    out = []
    for _ in range(config.steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return out + [opt.param_groups[0]["lr"]]


def _values(name: str, values, check) -> list:
    values = list(values)
    if not values:
        raise ValueError(f"{name} is empty; give at least one value")
    values = [check(v) for v in values]
    if len(set(values)) != len(values):
        raise ValueError(f"{name}={values!r} repeats a value; give distinct values")
    return values


def _seed(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(  # noqa: TRY004 - the project reports bad inputs as ValueError
            f"seed {value!r} is not allowed; model seeds are integers")
    return int(value)


def check_sweepable(config: TrainConfig) -> None:
    """Raise ``ValueError`` naming what a batched sweep cannot reproduce of ``config``."""
    if config.optimizer not in SWEEP_OPTIMIZERS:
        raise ValueError(f"optimizer={config.optimizer!r} is not supported by sweep; allowed: "
                         f"{', '.join(SWEEP_OPTIMIZERS)} (use eoslab.core.experiment.run)")
    if config.batch_size is not None:
        raise ValueError(f"batch_size={config.batch_size!r} is not supported by sweep; it runs "
                         "full-batch GD only (batch_size=None)")
    if config.model in ("cnn-bn", "resnet-small", "si-mlp"):
        raise ValueError(f"model={config.model!r} has BatchNorm, which sweep does not support; "
                         "use a model without BatchNorm or eoslab.core.experiment.run")


def sweep(config: TrainConfig, lrs: Sequence[float] | None = None,
          seeds: Sequence[int] | None = None, *, store: RunStore | None | bool = None,
          reuse: bool = True, callbacks: Sequence[Callable] = (),
          stop: threading.Event | None = None, sharpness_tol: float = 1e-2,
          eval_test: bool = True, compile: bool = False) -> SweepResult:
    """Train ``config`` for every step size in ``lrs`` and model seed in ``seeds`` at once.

    Copy ``(seed, lr)`` equals ``config.replace(lr=lr, model_seed=seed)`` run through
    :func:`eoslab.core.experiment.run`; results are stored under that config's key.

    Args:
        config: the shared experiment (full-batch GD / heavy ball, no BatchNorm).
        lrs: step sizes (default ``[config.lr]``).
        seeds: model seeds (default ``[config.model_seed]``).
        store: a :class:`RunStore`, ``None`` for the default one, ``False`` for none.
        reuse: take copies already in the store from it instead of training them.
        callbacks: ``callback(copy_index, row)`` as rows are recorded.
        stop: an event that ends the sweep (stopped runs are not stored).
        sharpness_tol: relative residual of the tracked sharpness (SharpnessProbe's default).
        eval_test: record test loss / accuracy as ``experiment.run`` does.
        compile: ``torch.compile`` the batched step.

    Raises:
        ValueError: empty or non-positive ``lrs``, bad seeds, or a config the batched loop
            cannot reproduce (other optimisers, minibatches, BatchNorm).
    """
    check_sweepable(config)
    lrs = _values("lrs", [config.lr] if lrs is None else lrs, check_lr)
    seeds = _values("seeds", [config.model_seed] if seeds is None else seeds, _seed)
    configs = [config.replace(lr=lr, model_seed=s) for s in seeds for lr in lrs]
    store = RunStore() if store is None else (store or None)
    runs: list[Run | None] = [None] * len(configs)
    if store is not None and reuse:
        for i, cfg in enumerate(configs):
            stored = store.load_run(cfg)
            if stored is not None:
                stored.extra["from_store"] = True
                runs[i] = stored
    todo = [i for i, r in enumerate(runs) if r is None]
    t0 = time.perf_counter()
    if todo:
        data = load_dataset(config.dataset, n_train=config.n_train, classes=config.classes,
                            seed=config.data_seed, loss=config.loss, device=config.device,
                            dtype=config.dtype, **config.data_options)
        models = [build_model(configs[i].model, data.input_shape, data.n_outputs,
                              width=config.width, depth=config.depth,
                              seed=configs[i].model_seed, device=data.x_train.device,
                              dtype=config.dtype) for i in todo]
        beta = config.momentum if config.optimizer in ("gd", "sgd") else (config.momentum or 0.9)
        make_optimizer(config.optimizer, models[0].parameters(), config.lr,
                       momentum=config.momentum, weight_decay=config.weight_decay)  # validates
        table = [_schedule_table(config, configs[i].lr) for i in todo]
        done = fit_batched(
            models, data, config.loss, table, steps=config.steps, momentum=beta,
            nesterov=config.optimizer == "nesterov", weight_decay=config.weight_decay,
            chunk_size=config.chunk_size, record_every=config.record_every,
            sharpness_every=config.sharpness_every, sharpness_tol=sharpness_tol,
            divergence_factor=config.divergence_factor, eval_test=eval_test,
            callbacks=[_Reindex(cb, todo) for cb in callbacks], stop=stop, compile=compile)
        for i, run in zip(todo, done):
            runs[i] = run
            if store is not None and run.status != "stopped":
                store.save_run(configs[i], run)
    return SweepResult(configs, runs, time.perf_counter() - t0, len(configs) - len(todo))


class _Reindex:
    """A callback seeing indices into the sweep's copies, not into the trained subset."""

    def __init__(self, callback, todo):
        self.callback, self.todo = callback, todo

    def __call__(self, index, row):
        self.callback(self.todo[index], row)
