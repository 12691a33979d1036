"""Summary and ablation tables as text: Markdown and LaTeX (booktabs), formatted by pandas.

The numbers come from :mod:`alfi.metrics`; here they become cells (3 significant digits,
``mean ± std``, NaN as an en dash) and files. Markdown goes through :meth:`DataFrame.to_markdown`
(tabulate, ``pipe`` format), the LaTeX ``tabular`` through :meth:`Styler.to_latex` (jinja2); the
cells, headers and caption are escaped here, so that ``±``, ``–`` and ``>`` come out as math.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from alfi.io import atomic_path
from alfi.metrics import variant_order

__all__ = [
    "SUMMARY_HEADERS",
    "format_summary",
    "format_ablation",
    "format_contrasts",
    "to_markdown",
    "to_latex",
    "write_table",
]


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
    "n_seeds": "seeds",
    "alfi_mean": "ALFI mean",
    "alfi_median": "ALFI median",
    "alfi_iqr": "ALFI IQR",
    "mle_mean": "MLE mean",
    "mle_median": "MLE median",
    "mle_iqr": "MLE IQR",
    "ratio": "ALFI/MLE (means)",
    "alfi_cover90": "ALFI 90 % cover",
    "alfi_calls": "ALFI sims/problem",
    "mle_calls": "MLE sims/problem",
    "alfi_ks": "ALFI KS",
    "mle_ks": "MLE KS",
    "alfi_asym": "ALFI asym. err",
    "mle_asym": "MLE asym. err",
    "asym_ratio": "ALFI/MLE asym.",
}


def _range(mean: float, low: float, high: float, seeds: int) -> str:
    """``mean (low–high)`` over several seeds, the mean alone for one."""
    if not np.isfinite(mean) or seeds < 2:
        return _fmt(mean)
    return f"{_fmt(mean)} ({_fmt(low)}–{_fmt(high)})"


def format_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as strings with readable headers: ``mean ± sd over seeds`` for ALFI's mean
    and the ratios, the coverage as ``mean (range over seeds)``; the asymmetry columns only if
    any is set."""
    frame = summary.assign(
        alfi_mean=_pm_column(summary, "alfi_mean", "alfi_mean_sd"),
        ratio=_pm_column(summary, "ratio", "ratio_sd"),
        asym_ratio=_pm_column(summary, "asym_ratio", "asym_ratio_sd"),
        alfi_cover90=[
            _range(*ends)
            for ends in zip(
                summary["alfi_cover90"],
                summary["alfi_cover90_min"],
                summary["alfi_cover90_max"],
                summary["n_seeds"],
                strict=True,
            )
        ],
    )
    frame = frame[[column for column in SUMMARY_HEADERS if column in frame]]
    if summary[["alfi_asym", "mle_asym"]].isna().all().all():
        frame = frame.drop(columns=["alfi_asym", "mle_asym", "asym_ratio"])
    return frame.map(lambda v: v if isinstance(v, str) else _fmt(v)).rename(columns=SUMMARY_HEADERS)


def _pm(mean: float, std: float) -> str:
    """``mean ± std`` with the std to 2 significant digits and the mean to the same decimals."""
    if not np.isfinite(std) or std <= 0 or not np.isfinite(mean):
        return _fmt(mean)
    decimals = max(0, 1 - math.floor(math.log10(std)))
    return f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _pm_column(frame: pd.DataFrame, mean: str, std: str) -> list[str]:
    return [_pm(m, s) for m, s in zip(frame[mean], frame[std], strict=True)]


def format_ablation(ablation: pd.DataFrame) -> pd.DataFrame:
    """Simulator rows x variant columns of ``mean ± std`` strings, plus the ``T_test`` used."""
    cells = _pm_column(ablation, "mean", "std")
    wide = ablation.assign(cell=cells).pivot(index="simulator", columns="variant", values="cell")
    wide = wide[sorted(wide.columns, key=variant_order)].fillna("–")
    t_test = ablation.groupby("simulator")["t_test"].first().map(_fmt)
    return (
        wide.assign(T_test=t_test)[["T_test", *wide.columns]]
        .reset_index()
        .rename_axis(columns=None)
    )


def format_contrasts(contrasts: pd.DataFrame) -> pd.DataFrame:
    """Paired contrasts (:func:`alfi.contrasts.ablation_contrasts`) as strings: ``first −
    second``, ``mean ± se``, their ratio ``t`` and the seeds where the first is lower."""
    return pd.DataFrame(
        {
            "simulator": contrasts["simulator"],
            "T_test": contrasts["t_test"].map(_fmt),
            "difference": contrasts["first"] + " − " + contrasts["second"],
            "mean ± se (paired over seeds)": _pm_column(contrasts, "mean", "se"),
            "t": [
                f"{t:.1f}" if np.isfinite(t) else "–" for t in contrasts["mean"] / contrasts["se"]
            ],
            "first lower": [
                f"{lower} of {n} seeds"
                for lower, n in zip(contrasts["lower"], contrasts["n_seeds"], strict=True)
            ],
        }
    )


COMPARISON_HEADERS = {
    "simulator": "simulator",
    "method": "method",
    "rmse": "RMSE",
    "problems": "problems",
    "ratio": "/ MLE",
    "coverage90": "90 % cover",
    "c2st": "C2ST",
    "simulations": "sims/problem",
    "train_simulations": "training sims",
    "train_seconds": "training s",
    "seconds": "s/problem",
}


def format_comparison(comparison: pd.DataFrame) -> pd.DataFrame:
    """The method comparison as strings: ``RMSE ± sd over seeds`` (the coverage too) and
    readable headers."""
    frame = comparison.assign(
        rmse=_pm_column(comparison, "rmse", "rmse_sd"),
        coverage90=_pm_column(comparison, "coverage90", "coverage90_sd"),
    )
    frame = frame[list(COMPARISON_HEADERS)]
    return frame.map(lambda v: v if isinstance(v, str) else _fmt(v)).rename(
        columns=COMPARISON_HEADERS
    )


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub Markdown (pipe) table of a string frame: first column left-, others right-aligned.

    Cells are written as they are (no number parsing, so ``"1.50"`` stays ``1.50``).
    """
    align = ["left", *["right"] * (len(frame.columns) - 1)]
    return frame.to_markdown(index=False, colalign=align, disable_numparse=True) + "\n"


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
    """A booktabs ``tabular`` of a string frame, in a ``table`` with ``caption`` below if given."""
    styler = (
        frame.style.hide(axis="index")
        .format(lambda cell: _latex_escape(str(cell)))
        .format_index(lambda name: _latex_escape(str(name)), axis="columns")
    )
    tabular = styler.to_latex(column_format="l" + "r" * (len(frame.columns) - 1), hrules=True)
    if not caption:
        return tabular
    head = [r"\begin{table}[t]", r"\centering", r"\small"]
    tail = [rf"\caption{{{_latex_escape(caption)}}}", r"\end{table}"]
    return "\n".join([*head, tabular.rstrip("\n"), *tail]) + "\n"


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
