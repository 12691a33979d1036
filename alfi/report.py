"""Report sub-commands: ``alfi figures`` and ``alfi tables`` from the aggregated Parquet results.

They only read ``estimates``/``metrics``/``samples`` tables (see :mod:`alfi.results`): the
numbers come from :mod:`alfi.metrics`, the figures from :mod:`alfi.figures`, the table text from
:mod:`alfi.tables`. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from alfi.columns import ESTIMATE_COLUMNS, MAIN_VARIANT, METRIC_COLUMNS, SAMPLE_COLUMNS
from alfi.comparison import comparison_table
from alfi.contrasts import ablation_contrasts
from alfi.io import read_parquet
from alfi.metrics import Horizon, ablation_table, summary_table
from alfi.tables import (
    format_ablation,
    format_comparison,
    format_contrasts,
    format_summary,
    write_table,
)

__all__ = ["add_commands", "cmd_figures", "cmd_tables", "write_tables"]

log = logging.getLogger("alfi")

SUMMARY_CAPTION = (
    "Final per-problem RMSE, sqrt(mean over parameters of (estimate - true)^2), of ALFI ({variant})"
    " and of the MLE over the test problems; ALFI's median and IQR (inter-quartile range) pool "
    "its seeds, its mean is the mean over seeds of the per-seed means, ± their standard deviation "
    "over seeds where there are several; ALFI/MLE: ratio of the means, ± the same spread over "
    "seeds; 90 % cover: fraction of (problem, parameter) truths inside ALFI's central 90 % "
    "interval, mean over seeds (range over seeds); sims/problem: simulated observations per "
    "problem; KS: two-sample Kolmogorov-Smirnov distance between the real observations and "
    "observations simulated at the final estimate; asym. err: mean absolute error on the "
    "Weinberg asymmetry, and ALFI's over the MLE's (± sd over seeds)."
)
COMPARISON_CAPTION = (
    "Every method on the same test problems (SMC-ABC on the first few: 'problems'): final "
    "per-problem RMSE (mean over problems; ± sd over seeds where a method has several), its "
    "ratio to the MLE's on the same problems, the fraction of truths in the method's central "
    "90 % interval (from its draws; ± sd over seeds), the C2ST accuracy of its draws against "
    "the exact posterior's (0.5: indistinguishable; first problems only), simulated observations "
    "per test problem and in training, and wall-clock seconds in training and per test problem."
)
ABLATION_CAPTION = (
    "Final per-problem RMSE of each ALFI variant (loss-weighting): mean over seeds of the "
    "per-seed mean over test problems, ± its standard deviation over seeds, at T_test = T_train "
    "({t_train}; or the smallest T_test run when that one is absent)."
)

CONTRASTS_CAPTION = (
    "The ablation's claims, paired over seeds: for each pair of ALFI variants, the difference of "
    "their mean final RMSE seed by seed (first minus second; negative: the first is the more "
    "accurate), its mean ± standard error over the seeds both have, and on how many of them the "
    "first is lower; the NLL against the MSE at each weighting, and each weighting against the "
    "exponential with each loss, at T_test = T_train ({t_train}; or the smallest T_test run when "
    "that one is absent); t: the mean over its standard "
    "error, whose two-sided 5 % level on S seeds is the t distribution's with S - 1 degrees of "
    "freedom: 4.30 at 3 seeds, 2.78 at 5, 2.26 at 10."
)


def write_tables(
    estimates_path: Path,
    metrics_path: Path,
    out_dir: Path,
    t_train: Horizon = 15,
    variant: str = MAIN_VARIANT,
) -> list[Path]:
    """Read the tables and write ``summary``, ``ablation``, ``ablation_contrasts`` and ``methods``
    (``.md``, ``.tex``) to ``out_dir``."""
    estimates = read_parquet(estimates_path, columns=ESTIMATE_COLUMNS)
    metrics = read_parquet(metrics_path, columns=METRIC_COLUMNS)
    summary = format_summary(summary_table(estimates, metrics, t_train, variant))
    ablation = format_ablation(ablation_table(estimates, t_train))
    out_dir = Path(out_dir)
    return [
        *write_table(summary, out_dir / "summary", SUMMARY_CAPTION.format(variant=variant)),
        *write_table(
            ablation, out_dir / "ablation", ABLATION_CAPTION.format(t_train=_describe(t_train))
        ),
        *write_table(
            format_contrasts(ablation_contrasts(estimates, t_train)),
            out_dir / "ablation_contrasts",
            CONTRASTS_CAPTION.format(t_train=_describe(t_train)),
        ),
        *write_table(
            format_comparison(comparison_table(estimates, metrics, variant)),
            out_dir / "methods",
            COMPARISON_CAPTION,
        ),
    ]


def _describe(t_train: Horizon) -> str:
    if isinstance(t_train, int):
        return str(t_train)
    return ", ".join(f"{name} {t}" for name, t in sorted(t_train.items()))


def parse_horizon(text: str) -> Horizon:
    """``--t-train``: ``15`` for every simulator, or ``poisson=15,weinberg=10``."""
    try:
        if "=" not in text:
            return int(text)
        pairs = (item.split("=", 1) for item in text.split(","))
        return {name.strip(): int(value) for name, value in pairs}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid training horizon {text!r}; expected an integer such as 15 or "
            "SIMULATOR=STEPS pairs such as poisson=15,weinberg=10"
        ) from None


def cmd_figures(args: argparse.Namespace) -> None:
    from alfi.figures import write_figures  # seaborn is slow to import: only when drawing

    estimates = read_parquet(args.estimates, columns=ESTIMATE_COLUMNS)
    samples = read_parquet(args.samples, columns=SAMPLE_COLUMNS)
    metrics = read_parquet(args.metrics, columns=METRIC_COLUMNS)
    paths = write_figures(estimates, samples, args.out_dir, args.t_train, metrics=metrics)
    log.info("wrote %d figure files to %s", len(paths), args.out_dir)


def cmd_tables(args: argparse.Namespace) -> None:
    paths = write_tables(args.estimates, args.metrics, args.out_dir, args.t_train)
    log.info("wrote %d table files to %s", len(paths), args.out_dir)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``figures`` and ``tables`` sub-commands (each sets ``run``)."""
    p = subparsers.add_parser("figures", help="figures (PNG, PDF) from the result tables")
    for table in ("estimates", "metrics", "samples"):
        p.add_argument(f"--{table}", required=True, type=Path, help=f"{table} Parquet table")
    p.add_argument("--out-dir", required=True, type=Path, help="where the figures go")
    p.add_argument(
        "--t-train",
        type=parse_horizon,
        default=15,
        help="training horizon: 15, or per simulator poisson=15,weinberg=10 (default 15)",
    )
    p.set_defaults(run=cmd_figures)

    p = subparsers.add_parser("tables", help="summary and ablation tables (Markdown, LaTeX)")
    for table in ("estimates", "metrics"):
        p.add_argument(f"--{table}", required=True, type=Path, help=f"{table} Parquet table")
    p.add_argument("--out-dir", required=True, type=Path, help="where the tables go")
    p.add_argument(
        "--t-train",
        type=parse_horizon,
        default=15,
        help="training horizon: 15, or per simulator poisson=15,weinberg=10 (default 15)",
    )
    p.set_defaults(run=cmd_tables)
