"""The one look of every figure, and how a figure is made and written: nothing is drawn here.

:func:`set_style` is the seaborn theme, :data:`PANEL` the size of one single-column panel and
:data:`COLORS`/:data:`LOSS_COLORS` the colours the figures share. :func:`new_figure` makes a
:class:`matplotlib.figure.Figure` on an Agg canvas (not registered with pyplot, so nothing leaks)
in that style; :func:`save_figure` writes it as PNG (dpi 200) and PDF, each atomically. The
figures themselves are in :mod:`alfi.figures` and :mod:`alfi.histograms`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from alfi.io import atomic_path

__all__ = ["PANEL", "COLORS", "LOSS_COLORS", "set_style", "new_figure", "save_figure"]

PANEL = (3.5, 2.6)  # inches: one single-column panel
COLORS = {"alfi": "#0173b2", "mle": "#d55e00", "real": "#949494", "train": "#555555"}
LOSS_COLORS = {"mse": "#de8f05", "nll": "#0173b2"}


def set_style() -> None:
    """The one style of every figure: seaborn ``paper`` context, white grid, small fonts."""
    sns.set_theme(
        context="paper",
        style="whitegrid",
        font_scale=1.0,
        rc={
            "axes.titlesize": 9,
            "axes.labelsize": 9,
            "xtick.labelsize": 8,
            "ytick.labelsize": 8,
            "legend.fontsize": 7.5,
            "legend.framealpha": 0.85,
            "lines.linewidth": 1.4,
            "figure.dpi": 100,
            "savefig.dpi": 200,
        },
    )


def new_figure(
    nrows: int = 1, ncols: int = 1, height: float = PANEL[1]
) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure with an Agg canvas and ``nrows x ncols`` panels."""
    set_style()
    fig = Figure(figsize=(PANEL[0] * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` (dpi 200) and ``stem.pdf`` atomically; return both paths."""
    paths = []
    for fmt in ("png", "pdf"):
        path = stem.parent / f"{stem.name}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=200)
        paths.append(path)
    return paths
