"""Two-dimensional toy Energy-Based Models for the theory notebook (``notebooks/01_ebm_theory.ipynb``).

Everything here lives in the plane, so energies can be drawn on a grid and the normalising
constant ``Z`` can be computed by brute force. The module holds

* data samplers: :func:`ring_of_gaussians`, :func:`two_moons`, :func:`uniform_box`;
* analytic energies with a known density: :class:`GaussianEnergy`, :class:`GaussianMixtureEnergy`
  (and the ready-made :func:`three_bumps` and :func:`ring_energy`);
* a learnable energy :class:`MLPEnergy`;
* the sampler :func:`langevin` and the persistent-chain store :class:`ReplayBuffer`;
* the training objective :func:`contrastive_loss` and the loop :func:`train_toy_ebm`;
* plotting helpers :func:`plot_energy`, :func:`plot_points`, :func:`plot_chains`,
  :func:`plot_energy_history`.

Conventions (the same as in the rest of the package):

* points are float tensors of shape ``(B, 2)``;
* every energy module's ``forward(x)`` returns ``f(x) = -E(x)`` of shape ``(B,)`` (the
  *negative* energy, i.e. an unnormalised log density); ``module.energy(x)`` returns ``E(x)``;
* one SGLD step is ``x <- x + step_size * grad_x f(x) + noise * N(0, I)``. Step size and noise
  are set independently; Langevin dynamics proper is ``step_size = eta / 2`` and
  ``noise = sqrt(eta)``. For small steps the chain then samples ``exp(-E(x) / T) / Z_T`` with
  temperature ``T = noise**2 / (2 * step_size)`` (see :func:`sgld_temperature`);
* all randomness goes through an explicit ``torch.Generator`` (argument ``generator``) or a
  ``seed``, so results are reproducible and do not touch the global random state.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

Sampler = Callable[..., torch.Tensor]


# ------------------------------------------------------------------------------------------
# Data samplers: (n, generator) -> (n, 2)
# ------------------------------------------------------------------------------------------
def ring_of_gaussians(n: int, k: int = 8, radius: float = 2.0, std: float = 0.15,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points from ``k`` equally weighted isotropic Gaussians (standard deviation ``std``)
    whose centres sit evenly on a circle of the given ``radius``. Returns ``(n, 2)``."""
    comp = torch.randint(k, (n,), generator=generator)
    angle = 2 * math.pi * comp.float() / k
    centres = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return centres + std * torch.randn(n, 2, generator=generator)


def two_moons(n: int, noise: float = 0.1, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points on two interleaved half circles (centred on the origin, roughly within
    ``[-2.4, 2.4] x [-1.3, 1.3]``), blurred by Gaussian noise of standard deviation ``noise``.
    Returns ``(n, 2)``."""
    t = math.pi * torch.rand(n, generator=generator)
    upper = torch.rand(n, generator=generator) < 0.5
    x = torch.where(upper, torch.cos(t), 1.0 - torch.cos(t))
    y = torch.where(upper, torch.sin(t), 0.5 - torch.sin(t))
    pts = 1.6 * (torch.stack([x, y], dim=1) - torch.tensor([0.5, 0.25]))
    return pts + noise * torch.randn(n, 2, generator=generator)


def uniform_box(n: int, lim: float = 3.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` points uniform in the square ``[-lim, lim]^2`` (the "noise" that chains start from).
    Returns ``(n, 2)``."""
    return (2 * torch.rand(n, 2, generator=generator) - 1) * lim


# ------------------------------------------------------------------------------------------
# Analytic energies (known, normalised densities): forward = f = -E = log p
# ------------------------------------------------------------------------------------------
class GaussianEnergy(nn.Module):
    """A Gaussian written as an energy: ``E(x) = 1/2 (x - mu)^T Sigma^{-1} (x - mu) + 1/2 log det(2 pi Sigma)``.

    The constant makes ``exp(-E)`` a normalised density (``Z = 1`` at ``T = 1``).

    Args:
        mean: ``(2,)`` mean ``mu``.
        cov: ``(2, 2)`` positive definite covariance ``Sigma``.
    """

    def __init__(self, mean, cov):
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.float32)
        cov = torch.as_tensor(cov, dtype=torch.float32)
        self.register_buffer("mean", mean)
        self.register_buffer("cov", cov)
        self.register_buffer("precision", torch.linalg.inv(cov))
        self.register_buffer("chol", torch.linalg.cholesky(cov))
        self.log_norm = 0.5 * float(torch.logdet(2 * math.pi * cov))

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2) -> (B,)`` energies ``E(x) = -log p(x)``."""
        d = x - self.mean
        return 0.5 * ((d @ self.precision) * d).sum(dim=1) + self.log_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2) -> (B,)`` negative energies ``f(x) = -E(x) = log p(x)``."""
        return -self.energy(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact samples, ``(n, 2)``."""
        return self.mean + torch.randn(n, 2, generator=generator) @ self.chol.T


class GaussianMixtureEnergy(nn.Module):
    """A mixture of isotropic Gaussians ``p(x) = sum_k w_k N(x; mu_k, s_k^2 I)`` as an energy
    ``E(x) = -log p(x)`` (normalised: ``Z = 1`` at ``T = 1``).

    Args:
        means: ``(K, 2)`` component centres.
        stds: ``(K,)`` standard deviations, or one float for all components.
        weights: ``(K,)`` mixture weights (normalised here); ``None`` = equal weights.
    """

    def __init__(self, means, stds=0.5, weights=None):
        super().__init__()
        means = torch.as_tensor(means, dtype=torch.float32)
        k = means.shape[0]
        stds = torch.as_tensor(stds, dtype=torch.float32).expand(k).clone()
        weights = torch.ones(k) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        self.register_buffer("means", means)
        self.register_buffer("stds", stds)
        self.register_buffer("weights", weights / weights.sum())

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2) -> (B,)`` energies ``E(x) = -log p(x)``."""
        sq = ((x[:, None, :] - self.means[None]) ** 2).sum(dim=2)            # (B, K)
        var = self.stds ** 2
        log_comp = self.weights.log() - sq / (2 * var) - torch.log(2 * math.pi * var)
        return -torch.logsumexp(log_comp, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2) -> (B,)`` negative energies ``f(x) = -E(x) = log p(x)``."""
        return -self.energy(x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact samples (pick a component, then add its Gaussian noise), ``(n, 2)``."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.means[comp] + self.stds[comp, None] * torch.randn(n, 2, generator=generator)

    def mean(self) -> torch.Tensor:
        """``(2,)`` mean of the mixture."""
        return (self.weights[:, None] * self.means).sum(dim=0)

    def covariance(self) -> torch.Tensor:
        """``(2, 2)`` covariance of the mixture (within- plus between-component spread)."""
        m = self.mean()
        d = self.means - m
        within = (self.weights * self.stds ** 2).sum() * torch.eye(2)
        between = (self.weights[:, None, None] * d[:, :, None] * d[:, None, :]).sum(dim=0)
        return within + between


def three_bumps() -> GaussianMixtureEnergy:
    """The lecture's illustration energy: three Gaussian bumps of different weight and width
    (the heaviest at the lower left, a broad one at the lower right, a narrow one at the top)."""
    return GaussianMixtureEnergy(means=[[-1.3, -0.7], [1.3, -0.9], [0.2, 1.3]],
                                 stds=[0.45, 0.6, 0.35], weights=[0.5, 0.3, 0.2])


def ring_energy(k: int = 8, radius: float = 2.0, std: float = 0.15) -> GaussianMixtureEnergy:
    """The exact energy ``-log p`` of :func:`ring_of_gaussians` with the same arguments."""
    angle = 2 * math.pi * torch.arange(k).float() / k
    means = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return GaussianMixtureEnergy(means, stds=std)


# ------------------------------------------------------------------------------------------
# Learnable energy
# ------------------------------------------------------------------------------------------
class MLPEnergy(nn.Module):
    """A small MLP energy ``2 -> hidden -> hidden -> 1`` with SiLU activations.

    SiLU is smooth, so ``grad_x f`` (what Langevin dynamics follows) is continuous; with ReLU
    the energy would be piecewise linear and its gradient piecewise constant.

    Args:
        hidden: width of the two hidden layers.
        seed: if given, the weights are initialised from this seed (the global random state
            is left untouched); otherwise from the global random state.
    """

    def __init__(self, hidden: int = 64, seed: int | None = None):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.net = nn.Sequential(nn.Linear(2, hidden), nn.SiLU(),
                                     nn.Linear(hidden, hidden), nn.SiLU(),
                                     nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2) -> (B,)`` negative energies ``f(x) = -E(x)``."""
        return self.net(x).squeeze(1)

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2) -> (B,)`` energies ``E(x) = -f(x)``."""
        return -self(x)


# ------------------------------------------------------------------------------------------
# Sampling
# ------------------------------------------------------------------------------------------
def sgld_temperature(step_size: float, noise: float) -> float:
    """Temperature ``T = noise**2 / (2 * step_size)`` that an SGLD chain with these settings
    samples at (for small steps): ``exp(-E / T)``. ``T = 1`` is Langevin dynamics proper."""
    return noise ** 2 / (2 * step_size)


def langevin(f: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, steps: int,
             step_size: float, noise: float, keep_every: int | None = None,
             generator: torch.Generator | None = None, clip: float | None = None):
    """Run ``steps`` SGLD steps ``x <- x + step_size * grad_x f(x) + noise * N(0, I)``.

    Args:
        f: callable ``(B, 2) -> (B,)`` returning the *negative* energy ``f = -E`` (any energy
            module of this file). Only the input gradient is taken: no parameter gradients
            are accumulated, and it also works inside ``torch.no_grad()``.
        x0: ``(B, 2)`` starting points (not modified).
        steps: number of SGLD steps.
        step_size: multiplier of ``grad_x f``.
        noise: standard deviation of the Gaussian noise added at every step (0 = gradient ascent
            on ``f``, i.e. descent on the energy).
        keep_every: if given, also return the chain every ``keep_every`` steps.
        generator: random generator for the noise.
        clip: if given, points are clamped to ``[-clip, clip]^2`` after every step (keeps
            chains on the plot when a step size is too large).

    Returns:
        ``x`` of shape ``(B, 2)`` (detached); with ``keep_every`` the pair ``(x, chain)``, where
        ``chain`` has shape ``(1 + steps // keep_every, B, 2)`` and ``chain[0] = x0``.
    """
    x = x0.detach().clone()
    chain = [x.clone()]
    with torch.enable_grad():
        for k in range(1, steps + 1):
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(f(x).sum(), x)
            with torch.no_grad():
                x = x + step_size * grad
                if noise > 0:
                    x = x + noise * torch.randn(x.shape, generator=generator).to(x.device)
                if clip is not None:
                    x = x.clamp(-clip, clip)
            if keep_every and k % keep_every == 0:
                chain.append(x.clone())
    x = x.detach()
    return (x, torch.stack(chain)) if keep_every else x


class ReplayBuffer:
    """Persistent chain starts (Du & Mordatch, 2019): a store of past SGLD end points.

    Each training step takes ``n`` stored points as chain starts (a fraction ``reinit_frac`` of
    them is replaced by fresh noise so the buffer keeps exploring), runs the chains, and
    writes the end points back to the same slots, so over training every chain runs for many
    more steps than one call of :func:`langevin` makes.

    Args:
        size: number of stored points.
        init: callable ``(n, generator) -> (n, 2)`` of fresh starts (e.g. :func:`uniform_box`);
            the buffer is filled with it at the start.
        reinit_frac: probability that a chain starts from fresh noise instead of the buffer.
        generator: random generator for slot picks and fresh starts.
    """

    def __init__(self, size: int, init: Sampler = uniform_box, reinit_frac: float = 0.05,
                 generator: torch.Generator | None = None):
        self.init = init
        self.reinit_frac = float(reinit_frac)
        self.generator = generator
        self.points = init(size, generator=generator)                   # (size, 2)

    def __len__(self) -> int:
        return len(self.points)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` chain starts: returns ``(x0, slots)`` with ``x0`` ``(n, 2)`` and ``slots``
        ``(n,)`` (long), the buffer slot each chain is written back to."""
        slots = torch.randint(len(self.points), (n,), generator=self.generator)
        x0 = self.points[slots].clone()
        fresh = torch.rand(n, generator=self.generator) < self.reinit_frac
        if bool(fresh.any()):
            x0[fresh] = self.init(int(fresh.sum()), generator=self.generator)
        return x0, slots

    def update(self, x: torch.Tensor, slots: torch.Tensor) -> None:
        """Store the chain end points ``x`` ``(n, 2)`` in their ``slots``."""
        self.points[slots] = x.detach().cpu()


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------
def contrastive_loss(e_real: torch.Tensor, e_fake: torch.Tensor, alpha: float = 0.0) -> torch.Tensor:
    """The EBM training loss on energies (not negative energies!)::

        loss = mean E(x_real) - mean E(x_fake) + alpha * (mean E(x_real)^2 + mean E(x_fake)^2)

    where ``mean E^2`` is the mean of the squared energies. The first two terms are a surrogate
    whose parameter gradient is the negative maximum-likelihood gradient (model samples
    ``x_fake`` stand in for the expectation under the model); the last term keeps the
    energies near zero (the contrast alone does not change if a constant is added to ``E``).

    Args:
        e_real: ``(B,)`` energies of data points.
        e_fake: ``(B',)`` energies of model samples.
        alpha: weight of the L2 energy regulariser.

    Returns:
        a scalar tensor.
    """
    return e_real.mean() - e_fake.mean() + alpha * (e_real.pow(2).mean() + e_fake.pow(2).mean())


def train_toy_ebm(data_sampler: Sampler, steps: int = 1000, alpha: float = 0.1, init: str = "buffer",
                  batch_size: int = 128, sgld_steps: int = 20, step_size: float = 0.01,
                  noise: float | None = None, lr: float = 1e-2, hidden: int = 64, buffer_size: int = 2000,
                  reinit_frac: float = 0.05, lim: float = 3.0, seed: int = 0):
    """Train an :class:`MLPEnergy` on a 2D data set with SGLD negatives.

    Every step draws ``batch_size`` data points, starts ``batch_size`` chains, runs
    ``sgld_steps`` steps of :func:`langevin` (points clamped to ``[-lim - 1, lim + 1]^2``) and takes
    one Adam step on :func:`contrastive_loss`. Chains start from

    * ``"buffer"``: a :class:`ReplayBuffer` of persistent chains (filled with uniform noise);
    * ``"data"``: the current data batch (contrastive divergence, CD-k; Hinton, 2002);
    * ``"noise"``: fresh uniform noise in ``[-lim, lim]^2`` (short-run MCMC; Nijkamp et al., 2019).

    Args:
        data_sampler: callable ``(n, generator=...) -> (n, 2)``, e.g. :func:`ring_of_gaussians`.
        steps: optimiser steps.
        alpha: weight of the L2 energy regulariser.
        init: ``"buffer"``, ``"data"`` or ``"noise"``.
        batch_size: data points and chains per step.
        sgld_steps, step_size, noise: settings of :func:`langevin` during training; the default
            ``noise=None`` means ``sqrt(2 * step_size)``, Langevin dynamics proper (``T = 1``).
        lr: Adam learning rate.
        hidden: width of the MLP.
        buffer_size, reinit_frac: settings of the :class:`ReplayBuffer` (``init="buffer"`` only).
        lim: half width of the square that noise starts are drawn from.
        seed: seeds the weights and every random draw of the run.

    Returns:
        ``(model, history)``: the trained model (in eval mode) and a dict of per-step lists
        ``"loss"``, ``"e_real"`` and ``"e_fake"`` (mean energies of the data batch and of the
        chain end points), plus ``"buffer"``: the final replay buffer points ``(buffer_size, 2)``
        (``None`` unless ``init="buffer"``) and ``"settings"``: the arguments of the run.
    """
    if init not in ("buffer", "data", "noise"):
        raise ValueError(f"init must be 'buffer', 'data' or 'noise', not {init!r}")
    settings = dict(steps=steps, alpha=alpha, init=init, batch_size=batch_size, sgld_steps=sgld_steps,
                    step_size=step_size, noise=noise, lr=lr, hidden=hidden, buffer_size=buffer_size,
                    reinit_frac=reinit_frac, lim=lim, seed=seed)
    if noise is None:
        noise = math.sqrt(2 * step_size)
        settings["noise"] = noise
    g = torch.Generator().manual_seed(seed)
    model = MLPEnergy(hidden, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def noise_init(n, generator=None):
        return uniform_box(n, lim, generator=generator)

    buffer = ReplayBuffer(buffer_size, noise_init, reinit_frac, generator=g) if init == "buffer" else None
    history = {"loss": [], "e_real": [], "e_fake": []}
    for _ in range(steps):
        x_real = data_sampler(batch_size, generator=g)
        if init == "buffer":
            x0, slots = buffer.sample(batch_size)
        elif init == "data":
            x0 = x_real
        else:
            x0 = noise_init(batch_size, generator=g)
        x_fake = langevin(model, x0, sgld_steps, step_size, noise, generator=g, clip=lim + 1)
        if buffer is not None:
            buffer.update(x_fake, slots)
        e_real, e_fake = model.energy(x_real), model.energy(x_fake)
        loss = contrastive_loss(e_real, e_fake, alpha)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history["loss"].append(loss.item())
        history["e_real"].append(e_real.mean().item())
        history["e_fake"].append(e_fake.mean().item())
    history["buffer"] = None if buffer is None else buffer.points.clone()
    history["settings"] = settings
    return model.eval(), history


# ------------------------------------------------------------------------------------------
# Grids and plots
# ------------------------------------------------------------------------------------------
def energy_on_grid(f: Callable[[torch.Tensor], torch.Tensor], lim: float = 3.0, n: int = 150):
    """Evaluate ``E = -f`` on an ``n x n`` grid over ``[-lim, lim]^2``.

    Returns ``(xs, E)``: ``xs`` the ``(n,)`` grid coordinates (same on both axes) and ``E`` an
    ``(n, n)`` numpy array with ``E[i, j] = E(x=xs[j], y=xs[i])`` (rows = y, as images are drawn).
    """
    xs = torch.linspace(-lim, lim, n)
    yy, xx = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    with torch.no_grad():
        e = -f(pts)
    return xs.numpy(), e.reshape(n, n).numpy()


def grid_log_z(E: np.ndarray, xs: np.ndarray, T: float = 1.0) -> float:
    """``log Z_T = log sum_grid exp(-E / T) * dA``: the normalising constant by brute force
    (a Riemann sum over the grid of :func:`energy_on_grid`)."""
    dA = float(xs[1] - xs[0]) ** 2
    a = -E / T
    m = a.max()
    return float(m + np.log(np.exp(a - m).sum() * dA))


def plot_energy(ax, f: Callable[[torch.Tensor], torch.Tensor], lim: float = 3.0, kind: str = "density",
                T: float = 1.0, n: int = 150, cmap: str | None = None, title: str | None = None,
                contours: bool = False, vmax: float | None = None):
    """Draw an energy model ``f = -E`` on ``[-lim, lim]^2``.

    Args:
        ax: matplotlib axes.
        f: callable ``(B, 2) -> (B,)`` returning ``-E`` (an energy module of this file).
        kind: ``"density"``: the Gibbs density ``q_T(x) = exp(-E(x) / T) / Z_T``, with ``Z_T``
            computed on the grid (:func:`grid_log_z`); ``"energy"``: filled contours of ``E``
            itself (the temperature is ignored; clipped at the 98th percentile so that huge
            energies far from the data do not wash out the colours).
        T: temperature (``"density"`` only).
        n: grid points per axis.
        cmap: colour map (default ``"viridis"`` for densities, ``"magma_r"`` for energies).
        title: axes title.
        contours: overlay thin contour lines of ``E``.
        vmax: upper end of the colour scale (default: the maximum of what is drawn).

    Returns:
        the matplotlib image / contour set (for ``fig.colorbar``).
    """
    xs, E = energy_on_grid(f, lim, n)
    extent = (-lim, lim, -lim, lim)
    if kind == "density":
        q = np.exp(-E / T - grid_log_z(E, xs, T))
        art = ax.imshow(q, origin="lower", extent=extent, cmap=cmap or "viridis", vmin=0.0,
                        vmax=vmax, interpolation="bilinear", aspect="equal")
    elif kind == "energy":
        top = np.percentile(E, 98) if vmax is None else vmax
        art = ax.contourf(xs, xs, np.minimum(E, top), levels=20, cmap=cmap or "magma_r")
        ax.set_aspect("equal")
    else:
        raise ValueError(f"kind must be 'density' or 'energy', not {kind!r}")
    if contours:
        ax.contour(xs, xs, E, levels=np.linspace(E.min(), np.percentile(E, 90), 10),
                   colors="white", linewidths=0.5, alpha=0.7)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    if title:
        ax.set_title(title)
    return art


def plot_points(ax, x: torch.Tensor, lim: float = 3.0, title: str | None = None, color: str = "C0",
                s: float = 4.0, alpha: float = 0.5, label: str | None = None):
    """Scatter ``(B, 2)`` points on ``[-lim, lim]^2`` with equal axes. Returns the scatter."""
    x = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    art = ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, color=color, label=label, linewidths=0)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return art


def plot_chains(ax, chain: torch.Tensor, n: int = 10, lim: float = 3.0, color: str = "white",
                title: str | None = None):
    """Draw the first ``n`` trajectories of a chain ``(S, B, 2)`` from :func:`langevin`
    (``keep_every``): a line per chain, a circle at its start and a dot at its end."""
    c = chain[:, :n].detach().cpu().numpy()
    for i in range(c.shape[1]):
        ax.plot(c[:, i, 0], c[:, i, 1], "-", color=color, lw=0.8, alpha=0.8)
    ax.scatter(c[0, :, 0], c[0, :, 1], s=22, facecolors="none", edgecolors=color, linewidths=1.0,
               label="start")
    ax.scatter(c[-1, :, 0], c[-1, :, 1], s=14, color="red", zorder=3, label="end")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)


def plot_energy_history(ax, history: dict, title: str | None = None, smooth: int = 20):
    """Mean energies of data (``"e_real"``) and of model samples (``"e_fake"``) over training,
    as returned by :func:`train_toy_ebm`, smoothed by a running mean over ``smooth`` steps."""
    def running_mean(v):
        v = np.asarray(v, dtype=float)
        k = max(1, min(smooth, len(v)))
        return np.convolve(v, np.ones(k) / k, mode="valid")

    for key, label, color in (("e_real", "data  E(x_real)", "C0"), ("e_fake", "samples  E(x_fake)", "C3")):
        v = running_mean(history[key])
        ax.plot(np.arange(len(v)) + (len(history[key]) - len(v)), v, color=color, label=label)
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("training step")
    ax.set_ylabel("mean energy")
    ax.legend(loc="best", fontsize="small")
    if title:
        ax.set_title(title)
