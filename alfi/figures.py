"""Figures from the Parquet results (Agg canvas, seaborn style); no model is ever run.

Every ``*_figure`` function returns a :class:`matplotlib.figure.Figure` made by
:func:`alfi.plotting.new_figure` (the shared style, sizes and colours); :func:`write_figures`
draws every figure of the results and writes each with :func:`alfi.plotting.save_figure` (PNG at
dpi 200, and PDF). The numbers drawn come from :mod:`alfi.metrics` (RMSE is its per-problem
``sqrt(mean_d (estimate_d - true_d)^2)``), :mod:`alfi.calibration` (the coverage of central
intervals) and :mod:`alfi.comparison`; here they are only drawn. The histograms of the
observations under the simulators' exact densities, the one figure that computes something
(with torch), are in :mod:`alfi.histograms`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from alfi.columns import LOSSES, MAIN_VARIANT, WEIGHTINGS
from alfi.comparison import calibration_table, comparison_table
from alfi.histograms import histogram_figure
from alfi.metrics import (
    Horizon,
    ablation_table,
    along_t,
    check_estimates,
    derived_error,
    final_rmse,
    horizon,
    main_rows,
    problem_rmse,
    select,
)
from alfi.plotting import COLORS, LOSS_COLORS, new_figure, save_figure

__all__ = [
    "trajectory_figure",
    "boxplot_figure",
    "asymmetry_figure",
    "ablation_figure",
    "calibration_figure",
    "methods_figure",
    "write_figures",
]


def _band(ax: Axes, values: pd.DataFrame, column: str, label: str) -> None:
    """Mean and ±1 std over problems (seeds pooled) of ``column`` along ``t``
    (:func:`alfi.metrics.along_t`); with several seeds, each seed's mean as a thin line."""
    stats = along_t(values, column)
    ax.plot(stats.index, stats["mean"], color=COLORS["alfi"], label=label)
    # The axis is logarithmic (errors fall by decades): where mean - std <= 0 the band is cut at
    # a tenth of the smallest mean.
    floor = float(stats["mean"].min()) / 10
    ax.fill_between(
        stats.index,
        np.maximum(stats["mean"] - stats["std"], floor),
        stats["mean"] + stats["std"],
        color=COLORS["alfi"],
        alpha=0.2,
        linewidth=0,
        label="±1 std",
    )
    seeds = values.groupby(["seed", "t"])[column].mean().unstack("seed")
    if seeds.shape[1] > 1:
        ax.plot(
            seeds.index,
            seeds.to_numpy(),
            color=COLORS["alfi"],
            linewidth=0.6,
            alpha=0.7,
            linestyle="--",
            label=["mean of one seed", *[None] * (seeds.shape[1] - 1)],
        )
    ax.set_xlim(stats.index.min(), stats.index.max())


def _title(ax: Axes, rows: pd.DataFrame, simulator: str) -> None:
    """Two-line title: simulator, then problems x seeds and ``t_test`` (fits one column)."""
    detail = (
        f"{rows['problem'].nunique()} problems x {rows['seed'].nunique()} seeds, "
        f"T_test={rows['t_test'].max()}"
    )
    ax.set_title(f"{simulator}\n{detail}", fontsize=8)


def _reference_lines(ax: Axes, mle_mean: float, t_train: int) -> None:
    if not np.isnan(mle_mean):
        ax.axhline(mle_mean, color=COLORS["mle"], linestyle=":", label="MLE (mean)")
    ax.axvline(
        t_train, color=COLORS["train"], linestyle="--", linewidth=1.0, label=r"$T_\mathrm{train}$"
    )


def _iteration_figure(
    values: pd.DataFrame, column: str, simulator: str, t_train: int, variant: str, ylabel: str
) -> Figure:
    """``column`` of the main ALFI rows along ``t`` (mean ±1 std), the MLE's mean as a line."""
    alfi = main_rows(values, simulator, variant)
    mle = values.loc[values["method"] == "mle", column]
    fig, axes = new_figure()
    ax = axes[0, 0]
    _band(ax, alfi, column, f"ALFI ({variant})")
    _reference_lines(ax, float(mle.mean()) if len(mle) else np.nan, t_train)
    ax.set_yscale("log")
    ax.set_xlabel("iteration t")
    ax.set_ylabel(ylabel)
    _title(ax, alfi, simulator)
    ax.legend(loc="upper right")
    return fig


def trajectory_figure(
    estimates: pd.DataFrame, simulator: str, t_train: int = 15, variant: str = MAIN_VARIANT
) -> Figure:
    """Mean ±1 std over test problems of the per-problem RMSE along the ALFI iterations."""
    rmse = problem_rmse(estimates[estimates["simulator"] == simulator])
    return _iteration_figure(rmse, "rmse", simulator, t_train, variant, "RMSE (log scale)")


def boxplot_figure(estimates: pd.DataFrame, simulator: str, variant: str = MAIN_VARIANT) -> Figure:
    """Box plots of the final per-problem RMSE (seeds pooled): ALFI at each ``t_test``, and the
    MLE; with several seeds, each seed's mean as a marker on its box."""
    final = final_rmse(estimates[estimates["simulator"] == simulator])
    alfi = select(final, method="alfi", variant=variant)
    groups = {f"ALFI\nT={t}": alfi[alfi["t_test"] == t] for t in sorted(alfi["t_test"].unique())}
    groups["MLE"] = final[final["method"] == "mle"]
    kept = {k: g.dropna(subset=["rmse"]) for k, g in groups.items() if len(g)}
    fig, axes = new_figure()
    ax = axes[0, 0]
    boxes = ax.boxplot(
        [group["rmse"].to_numpy() for group in kept.values()],
        widths=0.55,
        patch_artist=True,
        medianprops={"color": "black"},
        flierprops={"markersize": 2.5},
    )
    for patch, label in zip(boxes["boxes"], kept, strict=True):
        patch.set(facecolor=COLORS["mle"] if label == "MLE" else COLORS["alfi"], alpha=0.6)
    for position, group in enumerate(kept.values(), start=1):
        means = group.groupby("seed")["rmse"].mean()
        if len(means) > 1:
            ax.scatter(
                np.full(len(means), position),
                means,
                marker="D",
                s=14,
                facecolor="white",
                edgecolor="black",
                linewidth=0.7,
                zorder=3,
                label="mean of one seed",
            )
    ax.set_xticks(np.arange(1, len(kept) + 1), list(kept))
    ax.set_xlabel("")
    ax.set_ylabel("final RMSE")
    seeds = alfi["seed"].nunique()
    ax.set_title(f"{simulator} ({variant}, {seeds} seed{'s' if seeds > 1 else ''})")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles[:1], labels[:1], loc="upper right")
    return fig


def asymmetry_figure(
    estimates: pd.DataFrame,
    simulator: str = "weinberg",
    t_train: int = 15,
    variant: str = MAIN_VARIANT,
    parameter: str = "asymmetry",
) -> Figure:
    """Mean ±1 std over problems of ``|estimate - true|`` of a derived quantity along ``t``."""
    error = derived_error(estimates[estimates["simulator"] == simulator], parameter)
    if main_rows(error, simulator, variant).empty:
        raise ValueError(f"no {parameter!r} rows for {variant} on simulator {simulator!r}")
    ylabel = f"|error| on {parameter} (log scale)"
    return _iteration_figure(error, "error", simulator, t_train, variant, ylabel)


def ablation_figure(estimates: pd.DataFrame, t_train: Horizon = 15) -> Figure:
    """Per simulator, final RMSE by weighting (x) and loss (colour); error bars: std over seeds."""
    table = ablation_table(estimates, t_train)
    # A simulator trained with one variant has nothing to compare: it is left out.
    counts = table.groupby("simulator")["variant"].nunique()
    simulators = [s for s in table["simulator"].unique() if counts[s] > 1]
    if not simulators:
        fig, axes = new_figure()
        axes[0, 0].text(
            0.5,
            0.5,
            "no simulator trained with\nmore than one variant",
            ha="center",
            va="center",
            transform=axes[0, 0].transAxes,
        )
        axes[0, 0].set_axis_off()
        return fig
    ncols = min(2, len(simulators))
    nrows = math.ceil(len(simulators) / ncols)
    fig, axes = new_figure(nrows, ncols, height=2.3)
    losses = [loss for loss in LOSSES if loss in set(table["loss"])]
    losses += sorted(set(table["loss"]) - set(losses))
    width = 0.8 / len(losses)
    for ax, sim in zip(axes.flat, simulators, strict=False):
        part = table[table["simulator"] == sim]
        weightings = [w for w in WEIGHTINGS if w in set(part["weighting"])]
        weightings += sorted(set(part["weighting"]) - set(weightings))
        for i, loss in enumerate(losses):
            rows = part[part["loss"] == loss].set_index("weighting").reindex(weightings)
            x = np.arange(len(weightings)) + (i - (len(losses) - 1) / 2) * width
            ax.bar(
                x,
                rows["mean"],
                width * 0.92,
                yerr=rows["std"].fillna(0),
                capsize=2,
                color=LOSS_COLORS.get(loss),
                label=loss,
                error_kw={"linewidth": 0.8},
            )
        ax.set_xticks(np.arange(len(weightings)), weightings)
        ax.set_title(f"{sim} (T_test={part['t_test'].iloc[0]})")
        ax.set_xlabel("weighting")
        ax.set_ylabel("final RMSE")
    for ax in axes.flat[len(simulators) :]:
        ax.set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, title="loss", loc="outside right upper")
    return fig


#: Method families drawn beside ALFI in the calibration figure's first row; every other method
#: goes to the second, with the exact posterior drawn there again as the reference.
CALIBRATION_BESIDE_ALFI = ("alfi", "posterior", "prior_mean")


def _legend_entries(axes) -> dict:
    """Label to handle over ``axes``, each label once, in the order first drawn."""
    handles = {}
    for ax in axes:
        handles |= dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    return handles


def calibration_rows(table: pd.DataFrame) -> list[pd.DataFrame]:
    """The calibration figure's rows of :func:`alfi.comparison.calibration_table`: ALFI with the
    exact posterior and the prior, then the other methods with the exact posterior; a row with
    nothing but the exact posterior is left out."""
    family = table["method"].str.split(" ").str[0]
    beside_alfi = family.isin(CALIBRATION_BESIDE_ALFI)
    rows = [table[beside_alfi], table[~beside_alfi | (family == "posterior")]]
    return [row for row in rows if not (row["method"] == "posterior").all()]


def calibration_figure(estimates: pd.DataFrame, variant: str = MAIN_VARIANT) -> Figure:
    """Coverage of every method's central intervals minus their nominal level (0 is calibrated,
    above 0 too wide), one column per simulator; the first row ALFI (``variant``) at each
    ``T_test``, labelled, beside the exact posterior and the prior, the second the baselines
    beside the exact posterior (:func:`calibration_rows`). A method with several seeds is drawn
    at the mean over seeds, in a band from the lowest seed to the highest; a row's legend says
    so where one of its methods has several."""
    table = calibration_table(estimates, variant)
    table = table.assign(excess=table["coverage"] - table["level"])
    rows = calibration_rows(table)
    if not rows:
        raise ValueError(
            f"no draws nor finite sigma for variant {variant!r} or a baseline: no calibration"
        )
    sims = sorted(table["simulator"].unique())
    fig, axes = new_figure(len(rows), len(sims), height=2.8)
    methods = list(dict.fromkeys(table.sort_values("method")["method"]))
    palette = dict(zip(methods, sns.color_palette("colorblind", len(methods)), strict=True))
    reach = max(0.1, float(table["excess"].abs().max()) + 0.02)
    for index, part in enumerate(rows):
        for ax, sim in zip(axes[index], sims, strict=True):
            ax.axhline(0.0, color=COLORS["train"], linestyle="--", linewidth=1.0, label="ideal")
            panel = part[part["simulator"] == sim]
            if not panel.empty:  # a simulator may lack a row's methods (no baselines run)
                sns.lineplot(
                    data=panel,
                    x="level",
                    y="excess",
                    hue="method",
                    palette=palette,
                    marker="o",
                    markersize=3,
                    errorbar=("pi", 100),  # the band runs from the lowest seed to the highest
                    ax=ax,
                )
                ax.get_legend().remove()  # one legend per row, beside its last panel
            ax.set(xlim=(0, 1), ylim=(-reach, reach), xlabel="nominal level", ylabel="")
            ax.set_title(sim if index == 0 else "")
        axes[index, 0].set_ylabel("coverage − nominal")
        handles = _legend_entries(axes[index])
        several = part.groupby("method")["seed"].nunique().max() > 1
        axes[index, -1].legend(
            list(handles.values()),
            list(handles),
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            fontsize=8,
            title="band: range over seeds" if several else None,
            title_fontsize=8,
        )
    return fig


def methods_figure(comparison: pd.DataFrame) -> Figure:
    """Final RMSE against the simulated observations each method spends on the whole test set
    (training included; SMC-ABC, run on the first few problems, at its rate per problem), log
    axes, one panel per simulator; ± sd over seeds as error bars. One
    curve per method through its budgets (ALFI's T_test, SMC-ABC's budgets, the amortised
    methods' training sizes); methods that simulate nothing (the exact posterior, the MLE, the
    prior) are lines."""
    sims = sorted(comparison["simulator"].unique())
    fig, axes = new_figure(1, len(sims), height=3.0)
    family = comparison["method"].str.split(" ").str[0]
    palette = dict(zip(family.unique(), sns.color_palette("colorblind"), strict=False))
    for ax, sim in zip(axes[0], sims, strict=True):
        rows = comparison[comparison["simulator"] == sim].assign(family=family)
        spent = rows[rows["total_simulations"] > 0].sort_values("total_simulations")
        for name, curve in spent.groupby("family", sort=False):
            ax.errorbar(
                curve["total_simulations"],
                curve["rmse"],
                yerr=curve["rmse_sd"].fillna(0),
                fmt="o-",
                color=palette[name],
                label=name,
            )
        for row in rows[rows["total_simulations"] <= 0].itertuples():
            ax.axhline(row.rmse, color=palette[row.family], linestyle="--", label=row.family)
        ax.set(
            xscale="log", yscale="log", title=sim, xlabel="simulated observations, whole test set"
        )
        for axis in (ax.xaxis, ax.yaxis):  # decades only: minor labels collide on short ranges
            axis.set_minor_formatter(NullFormatter())
        if len(spent) == 0:
            ax.set_xscale("linear")
    axes[0, 0].set_ylabel("final RMSE")
    handles = _legend_entries(axes[0])
    fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=8)
    return fig


def write_figures(
    estimates: pd.DataFrame,
    samples: pd.DataFrame,
    out_dir: Path,
    t_train: Horizon = 15,
    variant: str = MAIN_VARIANT,
    metrics: pd.DataFrame | None = None,
) -> list[Path]:
    """Every figure for every simulator present under ``out_dir``; returns the written paths.
    The method comparison needs ``metrics`` (the simulations each method spent)."""
    check_estimates(estimates, variant)
    out_dir = Path(out_dir)
    figures: dict[str, Figure] = {}
    alfi = select(estimates, method="alfi", variant=variant)
    for sim in sorted(alfi["simulator"].unique()):
        t_sim = horizon(t_train, sim)
        figures[f"{sim}_trajectory"] = trajectory_figure(estimates, sim, t_sim, variant)
        figures[f"{sim}_boxplot"] = boxplot_figure(estimates, sim, variant)
        # The workflow's list of figures (workflow/rules/common.smk) follows the same rules.
        observations = samples.loc[samples["simulator"] == sim, "coordinate"]
        if len(observations) and (observations == 0).all():  # one-dimensional observations
            figures[f"{sim}_histograms"] = histogram_figure(estimates, samples, sim, variant)
        if (alfi.loc[alfi["simulator"] == sim, "parameter"] == "asymmetry").any():
            figures[f"{sim}_asymmetry"] = asymmetry_figure(estimates, sim, t_sim, variant)
    figures["ablation"] = ablation_figure(estimates, t_train)
    if calibration_rows(calibration_table(estimates, variant)):
        figures["calibration"] = calibration_figure(estimates, variant)
    if metrics is not None:
        figures["methods"] = methods_figure(comparison_table(estimates, metrics, variant))
    return [path for name, fig in figures.items() for path in save_figure(fig, out_dir / name)]
