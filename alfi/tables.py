"""Summary numbers and tables (Markdown, LaTeX) from the Parquet results; no model is ever run.

Per-problem RMSE at iteration ``t`` is ``sqrt(mean_d (estimate_d - true_d)^2)`` over the
simulator's own parameters (derived quantities such as the Weinberg ``asymmetry`` are left out),
i.e. the paper's ``||theta* - E[theta]||_2 / sqrt(D)``. The *final* RMSE is the one at
``t == t_test`` (``t == t_test == 0`` for the MLE). Seeds are pooled unless said otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from alfi.config import parse_variant
from alfi.io import InputError, atomic_path
from alfi.schema import ESTIMATE_COLUMNS, KEYS, MAIN_VARIANT, METRIC_COLUMNS, SAMPLE_COLUMNS

__all__ = [
    "MAIN_VARIANT",
    "LOSSES",
    "WEIGHTINGS",
    "KEYS",
    "ESTIMATE_COLUMNS",
    "METRIC_COLUMNS",
    "SAMPLE_COLUMNS",
    "check_estimates",
    "problem_rmse",
    "final_rmse",
    "derived_error",
    "ablation_t_test",
    "summary_table",
    "ablation_table",
    "format_summary",
    "format_ablation",
    "to_markdown",
    "to_latex",
    "write_table",
]

from alfi.losses import LOSSES, WEIGHTINGS  # noqa: E402


def check_estimates(estimates: pd.DataFrame, variant: str | None = None) -> None:
    """Raise :class:`InputError` if ``estimates`` is empty or holds no ALFI (``variant``) rows."""
    if estimates.empty:
        raise InputError("the estimates table is empty")
    alfi = estimates["method"] == "alfi"
    if not alfi.any():
        raise InputError("the estimates table holds no ALFI rows (method == 'alfi')")
    if variant is not None and not (estimates.loc[alfi, "variant"] == variant).any():
        present = sorted(estimates.loc[alfi, "variant"].unique())
        raise InputError(f"no ALFI rows for variant {variant!r}; present: {present}")


def problem_rmse(estimates: pd.DataFrame) -> pd.DataFrame:
    """Per-problem RMSE at every iteration: columns ``KEYS + ['t', 'rmse']``.

    A problem with any NaN estimate gets a NaN RMSE (aggregates below then skip it).
    """
    core = estimates.loc[~estimates["derived"], [*KEYS, "t"]]
    squared = (estimates["estimate"] - estimates["true"]).loc[core.index] ** 2
    grouped = core.assign(sq=squared, bad=squared.isna()).groupby([*KEYS, "t"], sort=True)
    mean = grouped["sq"].mean().where(~grouped["bad"].any())
    return np.sqrt(mean).rename("rmse").reset_index()


def final_rmse(estimates: pd.DataFrame) -> pd.DataFrame:
    """Per-problem RMSE at the last iteration (``t == t_test``)."""
    return problem_rmse(estimates[estimates["t"] == estimates["t_test"]])


def derived_error(estimates: pd.DataFrame, parameter: str = "asymmetry") -> pd.DataFrame:
    """``|estimate - true|`` of a derived quantity: columns ``KEYS + ['t', 'error']``."""
    rows = estimates[estimates["parameter"] == parameter]
    error = (rows["estimate"] - rows["true"]).abs()
    return rows[[*KEYS, "t"]].assign(error=error).reset_index(drop=True)


def _stats(values: pd.Series) -> tuple[float, float, float]:
    """Mean, median and inter-quartile range (NaN-skipping; all NaN when empty)."""
    if values.notna().sum() == 0:
        return np.nan, np.nan, np.nan
    q25, q75 = values.quantile([0.25, 0.75])
    return float(values.mean()), float(values.median()), float(q75 - q25)


def _metric_mean(metrics: pd.DataFrame, metric: str, **where: object) -> float:
    mask = metrics["metric"] == metric
    for column, value in where.items():
        mask &= metrics[column] == value
    return float(metrics.loc[mask, "value"].mean()) if mask.any() else np.nan


def summary_table(
    estimates: pd.DataFrame,
    metrics: pd.DataFrame,
    t_train: int = 15,
    variant: str = MAIN_VARIANT,
) -> pd.DataFrame:
    """One row per simulator x ``t_test`` of the ALFI ``variant``, next to the MLE.

    Columns: ``alfi_mean/median/iqr`` and ``mle_mean/median/iqr`` of the final RMSE, ``ratio``
    (ALFI mean / MLE mean), ``alfi_calls``/``mle_calls`` (mean ``simulations`` per problem; 0 for
    an MLE without that metric), ``alfi_ks``/``mle_ks`` (mean KS distance), ``alfi_asym``/
    ``mle_asym`` (mean |error| on ``asymmetry``; NaN where there is none) and ``extrapolated``
    (``t_test > t_train``).
    """
    check_estimates(estimates, variant)
    final = final_rmse(estimates)
    asym = derived_error(estimates)
    asym = asym[asym["t"] == asym["t_test"]]
    is_alfi = (final["method"] == "alfi") & (final["variant"] == variant)
    rows = []
    for (sim, t_test), group in final[is_alfi].groupby(["simulator", "t_test"]):
        mle = final[(final["method"] == "mle") & (final["simulator"] == sim)]
        alfi_stats, mle_stats = _stats(group["rmse"]), _stats(mle["rmse"])
        a_asym = asym[
            (asym["simulator"] == sim)
            & (asym["method"] == "alfi")
            & (asym["variant"] == variant)
            & (asym["t_test"] == t_test)
        ]
        m_asym = asym[(asym["simulator"] == sim) & (asym["method"] == "mle")]
        mle_calls = _metric_mean(metrics, "simulations", simulator=sim, method="mle")
        rows.append(
            {
                "simulator": sim,
                "t_test": int(t_test),
                "extrapolated": bool(t_test > t_train),
                "alfi_mean": alfi_stats[0],
                "alfi_median": alfi_stats[1],
                "alfi_iqr": alfi_stats[2],
                "mle_mean": mle_stats[0],
                "mle_median": mle_stats[1],
                "mle_iqr": mle_stats[2],
                "ratio": alfi_stats[0] / mle_stats[0] if mle_stats[0] else np.nan,
                "alfi_calls": _metric_mean(
                    metrics,
                    "simulations",
                    simulator=sim,
                    method="alfi",
                    variant=variant,
                    t_test=t_test,
                ),
                "mle_calls": 0.0 if np.isnan(mle_calls) and not mle.empty else mle_calls,
                "alfi_ks": _metric_mean(
                    metrics,
                    "ks_distance",
                    simulator=sim,
                    method="alfi",
                    variant=variant,
                    t_test=t_test,
                ),
                "mle_ks": _metric_mean(metrics, "ks_distance", simulator=sim, method="mle"),
                "alfi_asym": float(a_asym["error"].mean()) if len(a_asym) else np.nan,
                "mle_asym": float(m_asym["error"].mean()) if len(m_asym) else np.nan,
            }
        )
    return pd.DataFrame(rows)


def ablation_t_test(estimates: pd.DataFrame, simulator: str, t_train: int = 15) -> int:
    """The ``t_test`` an ablation uses: ``t_train`` if the simulator has it, else the smallest."""
    rows = estimates[(estimates["simulator"] == simulator) & (estimates["method"] == "alfi")]
    available = sorted(int(t) for t in rows["t_test"].unique())
    if not available:
        raise InputError(f"no ALFI rows for simulator {simulator!r}")
    return t_train if t_train in available else available[0]


def _variant_order(variant: str) -> tuple[int, int, str]:
    loss, _, weighting = variant.partition("-")
    return (
        LOSSES.index(loss) if loss in LOSSES else len(LOSSES),
        WEIGHTINGS.index(weighting) if weighting in WEIGHTINGS else len(WEIGHTINGS),
        variant,
    )


def ablation_table(estimates: pd.DataFrame, t_train: int = 15) -> pd.DataFrame:
    """Simulator x ALFI variant: final RMSE mean over seeds of the per-seed mean, and its std.

    Columns ``simulator, variant, loss, weighting, t_test, mean, std, n_seeds`` (std with
    ``ddof=1``; NaN for a single seed). ``t_test`` is chosen by :func:`ablation_t_test`.
    """
    check_estimates(estimates)
    final = final_rmse(estimates[estimates["method"] == "alfi"])
    rows = []
    for sim in sorted(final["simulator"].unique()):
        t_test = ablation_t_test(estimates, sim, t_train)
        part = final[(final["simulator"] == sim) & (final["t_test"] == t_test)]
        for variant in sorted(part["variant"].unique(), key=_variant_order):
            per_seed = part[part["variant"] == variant].groupby("seed")["rmse"].mean()
            loss, weighting = parse_variant(variant)
            rows.append(
                {
                    "simulator": sim,
                    "variant": variant,
                    "loss": loss,
                    "weighting": weighting,
                    "t_test": t_test,
                    "mean": float(per_seed.mean()),
                    "std": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else np.nan,
                    "n_seeds": int(len(per_seed)),
                }
            )
    return pd.DataFrame(rows)


def _fmt(value: object) -> str:
    """A cell: 3 significant digits, integers as such, NaN as an en dash."""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return "–"
        if float(value).is_integer() and abs(value) < 1e9:
            return f"{value:.0f}"
        return f"{value:.3g}"
    return str(value)


SUMMARY_HEADERS = {
    "simulator": "simulator",
    "t_test": "T_test",
    "extrapolated": "T_test > T_train",
    "alfi_mean": "ALFI mean",
    "alfi_median": "ALFI median",
    "alfi_iqr": "ALFI IQR",
    "mle_mean": "MLE mean",
    "mle_median": "MLE median",
    "mle_iqr": "MLE IQR",
    "ratio": "ALFI/MLE (means)",
    "alfi_calls": "ALFI sims/problem",
    "mle_calls": "MLE sims/problem",
    "alfi_ks": "ALFI KS",
    "mle_ks": "MLE KS",
    "alfi_asym": "ALFI asym. err",
    "mle_asym": "MLE asym. err",
}


def format_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as strings with readable headers (asymmetry columns only if any is set)."""
    frame = summary
    if frame[["alfi_asym", "mle_asym"]].isna().all().all():
        frame = frame.drop(columns=["alfi_asym", "mle_asym"])
    return frame.map(_fmt).rename(columns=SUMMARY_HEADERS)


def _pm(mean: float, std: float) -> str:
    """``mean ± std`` with the std to 2 significant digits and the mean to the same decimals."""
    if not np.isfinite(std) or std <= 0 or not np.isfinite(mean):
        return _fmt(mean)
    decimals = max(0, 1 - math.floor(math.log10(std)))
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def format_ablation(ablation: pd.DataFrame) -> pd.DataFrame:
    """Simulator rows x variant columns of ``mean ± std`` strings, plus the ``T_test`` used."""
    cells = [_pm(m, s) for m, s in zip(ablation["mean"], ablation["std"], strict=True)]
    wide = ablation.assign(cell=cells).pivot(index="simulator", columns="variant", values="cell")
    wide = wide[sorted(wide.columns, key=_variant_order)].fillna("–")
    t_test = ablation.groupby("simulator")["t_test"].first().map(_fmt)
    return (
        wide.assign(T_test=t_test)[["T_test", *wide.columns]]
        .reset_index()
        .rename_axis(columns=None)
    )


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table of a string frame (first column left-, others right-aligned)."""
    cells = [[str(c) for c in frame.columns], *frame.astype(str).to_numpy().tolist()]
    widths = [max(len(row[i]) for row in cells) for i in range(len(frame.columns))]
    rule = [":" + "-" * (w - 1) if i == 0 else "-" * (w - 1) + ":" for i, w in enumerate(widths)]

    def line(row: Sequence[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        return "| " + " | ".join(padded) + " |"

    return "\n".join([line(cells[0]), line(rule), *(line(r) for r in cells[1:])]) + "\n"


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "±": r"$\pm$",
    "–": "--",
    ">": r"$>$",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def to_latex(frame: pd.DataFrame, caption: str = "") -> str:
    """A booktabs ``tabular`` (in a ``table`` with ``caption`` if given) of a string frame."""
    spec = "l" + "r" * (len(frame.columns) - 1)
    body = [
        " & ".join(_latex_escape(str(c)) for c in row) + r" \\"
        for row in frame.astype(str).to_numpy().tolist()
    ]
    lines = [
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(_latex_escape(str(c)) for c in frame.columns) + r" \\",
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}",
    ]
    if caption:
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            *lines,
            rf"\caption{{{_latex_escape(caption)}}}",
            r"\end{table}",
        ]
    return "\n".join(lines) + "\n"


def write_table(frame: pd.DataFrame, stem: Path, caption: str = "") -> list[Path]:
    """Write ``stem.md`` (caption as a paragraph below) and ``stem.tex`` atomically."""
    paths = []
    md = to_markdown(frame) + (f"\n{caption}\n" if caption else "")
    for suffix, text in ((".md", md), (".tex", to_latex(frame, caption))):
        path = stem.parent / f"{stem.name}{suffix}"
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
