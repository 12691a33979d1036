r"""The ``{simulator}_histograms`` figure: real observations under the exact densities.

Per test problem (one seed), a histogram of the real observations (bins: :func:`rice_bins`) under
:math:`p(x \mid \theta^*)` at the true parameters and :math:`p(x \mid \hat\theta)` at ALFI's
final estimate, evaluated on :func:`density_grid` by :func:`exact_density`. That is the one
computation of the figures: torch is imported then, not with this module. A simulator whose
density cannot be drawn gets the observations simulated at :math:`\hat\theta` instead.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from alfi.columns import MAIN_VARIANT
from alfi.metrics import main_rows
from alfi.plotting import COLORS, new_figure

if TYPE_CHECKING:  # torch, imported only where a histogram needs a density
    from alfi.simulators import Simulator

__all__ = ["histogram_figure", "exact_density", "density_grid", "rice_bins"]


def _vector(values: pd.Series) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"


def _density_model(simulator: str) -> Simulator | None:
    """The simulator named ``simulator`` if the exact density of its observation can be drawn.

    That is: registered in this process (a plugin's is only if its module was imported), with
    one-dimensional observations and a ``log_likelihood``. Imports torch, so it is only called
    when a histogram figure is drawn: the rest of this module stays torch-free.
    """
    from alfi.simulators import get_simulator

    try:
        sim = get_simulator(simulator)
    except ValueError:
        return None
    if sim.observation_dim != 1:
        return None
    centre = (np.asarray(sim.prior_low, float) + np.asarray(sim.prior_high, float)) / 2
    point = np.clip(np.zeros(1), *sim.observation_support)
    try:
        exact_density(sim, centre, point)
    except NotImplementedError:
        return None
    return sim


def exact_density(sim: Simulator, theta: np.ndarray, grid: np.ndarray) -> np.ndarray:
    r""":math:`p(x \mid \theta)` of a one-dimensional observation at each ``grid`` point ``(G,)``.

    ``theta`` ``(D,)`` is first projected onto the prior box, as evaluation projects an estimate
    before simulating at it; a probability mass where ``sim.discrete_observations``.
    """
    import torch

    with torch.no_grad():
        theta_t = sim.clamp(torch.tensor(theta, dtype=torch.float64))
        x = torch.tensor(grid, dtype=torch.float64).reshape(-1, 1, 1)
        log_p = sim.log_likelihood(theta_t.expand(len(grid), -1), x)
    return log_p.exp().numpy()


def _plot_range(
    values: np.ndarray, support: tuple[float, float], discrete: bool
) -> tuple[float, float]:
    """A bounded support whole; else the range of ``values`` padded by 5 %, cut to the support."""
    low, high = support
    if not (math.isfinite(low) and math.isfinite(high)):
        pad = 0.05 * float(np.ptp(values)) or 1.0
        low = max(low, float(values.min()) - pad)
        high = min(high, float(values.max()) + pad)
    if discrete:
        low, high = math.floor(low), math.ceil(high)
    return low, high


def rice_bins(n: int) -> int:
    """Rice's rule, ``ceil(2 n^(1/3))`` bins for ``n`` observations, kept within 10 to 30."""
    return min(30, max(10, math.ceil(2 * n ** (1 / 3))))


def _bin_edges(low: float, high: float, discrete: bool, bins: int) -> np.ndarray:
    """``bins`` equal bins over ``[low, high]``; for integers, bins of whole integers."""
    if not discrete:
        return np.linspace(low, high, bins + 1)
    width = max(1, math.ceil((high - low + 1) / bins))
    return low - 0.5 + width * np.arange(math.ceil((high - low + 1) / width) + 1)


def density_grid(low: float, high: float, discrete: bool, points: int = 401) -> np.ndarray:
    """Where densities are evaluated: ``points`` points over ``[low, high]``, or its integers."""
    if not discrete:
        return np.linspace(low, high, points)
    return np.arange(low, high + 1, max(1, math.ceil((high - low + 1) / (10 * points))), float)


def _parameters(rows: pd.DataFrame, names: list[str], column: str) -> np.ndarray:
    """``column`` (``true`` or ``estimate``) of ``rows`` as a vector ordered as ``names``."""
    return rows.set_index("parameter")[column].reindex(names).to_numpy(dtype=float)


def _draw_densities(
    ax: Axes, sim: Simulator, rows: pd.DataFrame, grid: np.ndarray, discrete: bool
) -> None:
    """The exact densities at the true parameters and at the (projected) final estimate."""
    names = list(sim.parameter_names)
    style = {"drawstyle": "steps-mid"} if discrete else {}
    curves = (  # the dashed truth on top, where the inferred curve cannot hide it
        ("true", "black", "--", 3, r"$p(x \mid \theta^*)$, true $\theta^*$"),
        ("estimate", COLORS["alfi"], "-", 2, r"$p(x \mid \hat\theta)$, inferred $\hat\theta$"),
    )
    for column, color, linestyle, zorder, label in curves:
        theta = _parameters(rows, names, column)
        if np.isfinite(theta).all():
            density = exact_density(sim, theta, grid)
            ax.plot(grid, density, color=color, ls=linestyle, zorder=zorder, label=label, **style)


def histogram_figure(
    estimates: pd.DataFrame,
    samples: pd.DataFrame,
    simulator: str = "weinberg",
    variant: str = MAIN_VARIANT,
    n_problems: int = 3,
    coordinate: int = 0,
    bins: int | None = None,
) -> Figure:
    r"""Real observations of up to ``n_problems`` problems (one seed: the smallest) against the
    exact densities :math:`p(x \mid \theta^*)` and :math:`p(x \mid \hat\theta)`.

    :math:`\hat\theta` is the final estimate at ``t_test``, projected onto the prior box; the
    densities are drawn on a grid over the observation's support (a bounded one whole, else the
    range of the observations); ``bins`` (default: :func:`rice_bins`) bins per histogram. The
    observations simulated at :math:`\hat\theta` are a noisy copy of the second curve and are
    left out, unless no exact density can be drawn (see :func:`_density_model`: observations of
    several coordinates, no ``log_likelihood``, a plugin not imported here): then they are drawn
    instead, as a step histogram.
    """
    shown = main_rows(samples, simulator, variant)
    shown = shown[(shown["seed"] == shown["seed"].min()) & (shown["coordinate"] == coordinate)]
    problems = sorted(shown["problem"].unique())[:n_problems]
    if not problems:
        raise ValueError(f"no {variant} samples for simulator {simulator!r}")
    est = main_rows(estimates, simulator, variant)
    est = est[(est["seed"] == shown["seed"].min()) & (est["t"] == est["t_test"]) & ~est["derived"]]
    sim = _density_model(simulator)
    support = sim.observation_support if sim is not None else (-math.inf, math.inf)
    discrete = sim is not None and sim.discrete_observations
    fig, axes = new_figure(1, len(problems), height=2.5)
    for ax, problem in zip(axes[0], problems, strict=True):
        part = shown[shown["problem"] == problem]
        real = part.loc[part["source"] == "real", "value"].to_numpy()
        simulated = part.loc[part["source"] == "simulated", "value"].to_numpy()
        low, high = _plot_range(np.concatenate([real, simulated]), support, discrete)
        edges = _bin_edges(low, high, discrete, bins or rice_bins(len(real)))
        ax.hist(real, bins=edges, density=True, color=COLORS["real"], alpha=0.6, label="real x")
        theta = est[est["problem"] == problem]
        if sim is not None:
            _draw_densities(ax, sim, theta, density_grid(low, high, discrete), discrete)
        else:
            ax.hist(
                simulated,
                bins=edges,
                density=True,
                histtype="step",
                color=COLORS["alfi"],
                linewidth=1.4,
                label=r"simulated at $\hat\theta$",
            )
        ax.set_title(
            f"true {_vector(theta['true'])}\ninferred {_vector(theta['estimate'])}", fontsize=8
        )
        ax.set_xlabel("observation x" if coordinate == 0 else f"observation x[{coordinate}]")
    axes[0, 0].set_ylabel("probability mass" if discrete else "density")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right upper")
    return fig
