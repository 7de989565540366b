"""A landscape with sharp local minima and one wide global minimum, and noisy GD on it.

Mohtashami, Jaggi & Stich (*Special Properties of Gradient Descent with Large Learning
Rates*, ICML 2023, arXiv 2205.15142) prove that on functions whose local minima are *sharp*
while the global one is *wide*, gradient descent with a large step size ends at the global
minimum where a small step size ends in a local one, and that adding Gaussian noise to
small-step GD does not close the gap.  :class:`SharpValleys` is a member of such a class
in :math:`\\mathbb R^D`: a wide bowl of curvature :math:`\\mu` carrying narrow radial valleys
(rings) of depth :math:`h` and width :math:`w` at radii :math:`\\rho_1<\\dots<\\rho_K`,

.. math::

    f(x) = \\frac{\\mu}{2}\\lVert x\\rVert^2
           - h \\sum_{k=1}^K \\exp\\Bigl(-\\frac{(\\lVert x\\rVert-\\rho_k)^2}{2w^2}\\Bigr),
    \\qquad
    \\nabla f(x) = x\\Bigl(\\mu + \\frac{h}{r}\\sum_k \\frac{r-\\rho_k}{w^2}
                   e^{-(r-\\rho_k)^2/2w^2}\\Bigr),\\ r = \\lVert x\\rVert .

With :math:`\\mu\\rho_1^2/2 > h` every ring bottom lies above :math:`f(0)=0`, so the origin is
the only global minimum; its curvature is :math:`\\mu` (stable for :math:`\\eta<2/\\mu`)
while a ring's radial curvature is about :math:`h/w^2` (stable only for
:math:`\\eta<2w^2/h`).  GD with :math:`2w^2/h < \\eta < 2/\\mu` cannot rest in any ring.

:func:`noisy_gd` runs :math:`x \\leftarrow x - \\eta\\,(\\nabla f(x) + \\sigma\\xi)`,
:math:`\\xi\\sim N(0, I_D)`, for a whole grid of step sizes :math:`\\eta` and noise levels
:math:`\\sigma` and many seeds as one batched tensor, switching the noise off for the last
``quiet`` steps so that every run settles in the minimum whose basin it is in;
:func:`escape_grid` turns that into the fraction of runs that reach the global minimum.

Example:
    >>> fn = SharpValleys(dim=2)
    >>> abs(float(fn.value(torch.zeros(2))))  # the global minimum
    0.0
    >>> [round(r, 3) for r in fn.ring_minima()[0][:2]]
    [1.496, 1.995]
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["EscapeGrid", "SharpValleys", "escape_grid", "noisy_gd", "start_points"]


def _positive(name: str, value) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r} is not allowed; it must be a finite number > 0")
    return float(value)


@dataclass(frozen=True)
class SharpValleys:
    """The bowl with sharp ring valleys (see the module docs).

    Attributes:
        dim: the dimension :math:`D`.
        curvature: :math:`\\mu`, the bowl's (and the global minimum's) curvature.
        radii: the ring radii :math:`\\rho_k`.
        depth: :math:`h`; width: :math:`w`.
    """

    dim: int = 20
    curvature: float = 1.0
    radii: tuple = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5)
    depth: float = 1.0
    width: float = 0.05

    def __post_init__(self):
        if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"dim={self.dim!r} is not allowed; it must be an integer >= 1")
        for name in ("curvature", "depth", "width"):
            _positive(name, getattr(self, name))
        radii = tuple(float(r) for r in self.radii)
        if not radii or any(r <= 0 for r in radii) or list(radii) != sorted(set(radii)):
            raise ValueError(f"radii={self.radii!r} is not allowed; give increasing radii > 0")
        if self.curvature * radii[0] ** 2 / 2 <= self.depth:
            raise ValueError(f"radii[0]={radii[0]!r} is too small: the ring would be deeper than "
                             f"the global minimum; need curvature*radii[0]**2/2 > depth "
                             f"({self.depth!r})")
        object.__setattr__(self, "radii", radii)

    # -- the function -------------------------------------------------------------------
    def _rings(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rho = torch.tensor(self.radii, dtype=r.dtype, device=r.device)
        d = r[..., None] - rho
        bump = torch.exp(-d * d / (2 * self.width ** 2))
        return bump, d

    def profile(self, r: torch.Tensor) -> torch.Tensor:
        """:math:`f` as a function of the radius :math:`r = \\lVert x\\rVert`."""
        bump, _ = self._rings(r)
        return self.curvature * r * r / 2 - self.depth * bump.sum(-1)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`f(x)` over the last dimension of ``x`` (any leading batch shape)."""
        return self.profile(torch.linalg.vector_norm(x, dim=-1))

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`\\nabla f(x)` in closed form (see the module docs)."""
        r = torch.linalg.vector_norm(x, dim=-1)
        return x * self._radial_factor(r)[..., None]

    def _radial_factor(self, r: torch.Tensor) -> torch.Tensor:
        bump, d = self._rings(r)
        pull = self.depth / self.width ** 2 * (d * bump).sum(-1)
        return self.curvature + pull / r.clamp_min(1e-12)

    # -- its minima ---------------------------------------------------------------------
    def ring_minima(self, points: int = 200_001) -> tuple[list, list]:
        """Radii and values of the ring (local) minima, from a dense radial grid in float64."""
        r = torch.linspace(0.0, self.radii[-1] + 10 * self.width, points, dtype=torch.float64)
        f = self.profile(r)
        inner = (f[1:-1] < f[:-2]) & (f[1:-1] < f[2:])
        idx = torch.nonzero(inner).flatten() + 1
        return [float(r[i]) for i in idx], [float(f[i]) for i in idx]

    def ring_sharpness(self) -> float:
        """The smallest radial curvature :math:`f''(r)` over the ring minima (autograd)."""
        radii, _ = self._some_minima()
        out = []
        for rad in radii:
            r = torch.tensor(rad, dtype=torch.float64, requires_grad=True)
            (g,) = torch.autograd.grad(self.profile(r), r, create_graph=True)
            (h,) = torch.autograd.grad(g, r)
            out.append(float(h))
        return min(out)

    def success_level(self) -> float:
        """Runs ending below this value are at the global minimum: half the lowest ring value."""
        return 0.5 * min(self._some_minima()[1])

    def _some_minima(self) -> tuple[list, list]:
        radii, values = self.ring_minima()
        if not radii:
            raise ValueError(f"no ring is a local minimum (depth={self.depth!r}, "
                             f"width={self.width!r}, curvature={self.curvature!r}): the bowl's "
                             "pull beats every ring; use deeper or narrower rings")
        return radii, values


def start_points(fn: SharpValleys, seeds: int, radius: float, seed: int = 0,
                 dtype=torch.float32, device=None) -> torch.Tensor:
    """``seeds`` random starts on the sphere of ``radius`` (outside the rings), shape (seeds, D)."""
    _positive("radius", radius)
    g = torch.Generator().manual_seed(int(seed))
    x = torch.randn(int(seeds), fn.dim, generator=g, dtype=torch.float64)
    x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True) * radius
    return x.to(dtype=dtype, device=device)


def noisy_gd(fn: SharpValleys, x0: torch.Tensor, lrs: Sequence[float],
             noises: Sequence[float], steps: int, quiet: int = 0, seed: int = 0,
             record_every: int = 0, diverge_radius: float = 1e4,
             stop: threading.Event | None = None,
             callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
             callback_every: int = 0) -> dict:
    """Noisy GD for every (eta, sigma, start) at once.

    .. math:: x_{t+1} = x_t - \\eta\\,\\bigl(\\nabla f(x_t) + \\sigma\\,\\xi_t\\bigr),
              \\qquad \\xi_t \\sim N(0, I_D),\\ \\sigma = 0 \\text{ for } t \\ge
              \\text{steps} - \\text{quiet}.

    Args:
        fn: the landscape.
        x0: starts, shape (seeds, D).
        lrs: the grid's L step sizes.
        noises: the grid's S noise levels.
        steps: iterations.
        quiet: the last ``quiet`` of them are noise-free.
        seed: the noise generator's seed.
        record_every: keep the radius and value of every run every that many steps (0: keep
            none).
        diverge_radius: a run whose radius exceeds it is diverged and frozen there.
        stop: ends the loop early (the result then has ``"steps"`` < ``steps``).
        callback: ``callback(t, x, alive)`` every ``callback_every`` steps.
        callback_every: how often ``callback`` is called (0: never).

    Returns:
        dict with ``x`` (L, S, seeds, D) final points, ``alive`` (L, S, seeds) bools,
        ``diverged_at`` (L, S, seeds) step of divergence or -1, ``steps`` done, and when
        recording ``history_steps`` and ``radius`` / ``value`` of shape (T, L, S, seeds).
    """
    lrs_t = torch.as_tensor(list(lrs), dtype=x0.dtype, device=x0.device)
    sig_t = torch.as_tensor(list(noises), dtype=x0.dtype, device=x0.device)
    if lrs_t.ndim != 1 or len(lrs_t) == 0 or not bool((lrs_t > 0).all()):
        raise ValueError(f"lrs={list(lrs)!r} is not allowed; give step sizes > 0")
    if sig_t.ndim != 1 or len(sig_t) == 0 or not bool((sig_t >= 0).all()):
        raise ValueError(f"noises={list(noises)!r} is not allowed; give noise levels >= 0")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r} is not allowed; it must be an integer >= 1")
    if not (isinstance(quiet, int) and 0 <= quiet <= steps):
        raise ValueError(f"quiet={quiet!r} is not allowed; it must be an integer in [0, steps]")
    if x0.ndim != 2 or x0.shape[1] != fn.dim:
        raise ValueError(f"x0 has shape {tuple(x0.shape)}; expected (seeds, {fn.dim})")
    L, S, (N, D) = len(lrs_t), len(sig_t), x0.shape
    x = x0.expand(L, S, N, D).clone()
    eta = lrs_t.view(L, 1, 1, 1)
    step_noise = (lrs_t.view(L, 1, 1) * sig_t.view(1, S, 1)).unsqueeze(-1)  # eta * sigma
    noisy = bool((sig_t > 0).any())
    alive = torch.ones(L, S, N, dtype=torch.bool, device=x0.device)
    died = torch.full((L, S, N), -1, dtype=torch.long, device=x0.device)
    gen = torch.Generator(device=x0.device).manual_seed(int(seed))
    hist_steps, radii, values = [], [], []
    done = 0
    for t in range(steps + 1):
        r = torch.linalg.vector_norm(x, dim=-1)
        if record_every and (t % record_every == 0 or t == steps):
            hist_steps.append(t)
            radii.append(r.clone())
            values.append(fn.profile(r))
        if callback is not None and callback_every and t % callback_every == 0:
            callback(t, x, alive)
        if t == steps or (stop is not None and stop.is_set()):
            break
        blown = alive & ~(r < diverge_radius)  # also catches nan
        if bool(blown.any()):
            died[blown] = t
            alive &= ~blown
        update = eta * (x * fn._radial_factor(r)[..., None])
        if noisy and t < steps - quiet:
            update = update + step_noise * torch.randn(x.shape, generator=gen, dtype=x.dtype,
                                                        device=x.device)
        x = torch.where(alive[..., None], x - update, x)
        done = t + 1
    out = {"x": x, "alive": alive, "diverged_at": died, "steps": done}
    if record_every:
        out.update(history_steps=hist_steps, radius=torch.stack(radii), value=torch.stack(values))
    return out


@dataclass
class EscapeGrid:
    """Which runs of a (step size x noise) grid reached the global minimum.

    Attributes:
        lrs, noises: the grid's axes.
        reached: (L, S) fraction of seeds ending below :meth:`SharpValleys.success_level`.
        diverged: (L, S) fraction of seeds that diverged.
        final_value: (L, S, seeds) final :math:`f`.
        steps: iterations run.
    """

    lrs: list
    noises: list
    reached: np.ndarray
    diverged: np.ndarray
    final_value: np.ndarray
    steps: int

    def rows(self) -> list[dict]:
        """One dict per grid cell: lr, noise, reached, diverged (for a heatmap)."""
        return [{"lr": float(a), "noise": float(s), "reached": float(self.reached[i, j]),
                 "diverged": float(self.diverged[i, j])}
                for i, a in enumerate(self.lrs) for j, s in enumerate(self.noises)]


def escape_grid(fn: SharpValleys, lrs: Sequence[float], noises: Sequence[float], seeds: int,
                steps: int, quiet: int, radius: float, seed: int = 0, dtype=torch.float32,
                device=None, stop: threading.Event | None = None,
                progress: Callable[[int, EscapeGrid], None] | None = None,
                progress_every: int = 0) -> EscapeGrid:
    """:func:`noisy_gd` from ``seeds`` starts at ``radius``; the fraction reaching the minimum.

    ``progress(t, partial_grid)`` is called every ``progress_every`` steps with the grid as
    it stands (runs still moving count by their current value).
    """
    x0 = start_points(fn, seeds, radius, seed=seed, dtype=dtype, device=device)
    level = fn.success_level()

    def summarise(x, alive, t) -> EscapeGrid:
        v = fn.value(x)
        ok = alive & (v < level)
        return EscapeGrid(list(map(float, lrs)), list(map(float, noises)),
                          ok.double().mean(-1).cpu().numpy(),
                          (~alive).double().mean(-1).cpu().numpy(),
                          torch.where(alive, v, torch.full_like(v, math.inf)).cpu().numpy(), t)

    callback = None
    if progress is not None and progress_every:
        def callback(t, x, alive):
            progress(t, summarise(x, alive, t))
    out = noisy_gd(fn, x0, lrs, noises, steps, quiet=quiet, seed=seed + 1, stop=stop,
                   callback=callback, callback_every=progress_every)
    return summarise(out["x"], out["alive"], out["steps"])
