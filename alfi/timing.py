r"""Where a workflow run's time goes: the job-seconds in Snakemake's benchmark files.

Every job the timing reads (the meta-datasets, ALFI's trainings and evaluations, every method's
runs and the aggregation) writes a ``benchmark:`` file, ``RESULTS/logs/KIND/NAME.benchmark.tsv``,
one row per repeat, with the job's wall-clock seconds ``s``, its CPU seconds ``cpu_time`` and
its peak resident memory ``max_rss`` (MiB). :func:`read_benchmarks` reads them into one tidy
frame, a row per job: ``kind`` (the log folder: ``train``, ``evaluate``, ``npe``, …),
``method`` (what the job is for: ALFI's trainings and evaluations are ``alfi``, the
meta-datasets ``data``, otherwise the kind), ``simulator`` (from the job's name, which the
workflow writes as ``SIMULATOR`` followed by the kind's suffix, :data:`NAME_SUFFIXES`;
``""`` for the aggregation, a job of every simulator's), ``job`` (the file's stem),
``seconds``, ``cpu_seconds`` and ``max_rss_mb`` (means over repeats).

:func:`time_table` sums them per method and kind, per simulator. Job-seconds add up over jobs
that ran side by side: with every one of C cores busy, a run's wall is about their sum / C.
They measure the machine as much as the code: on one shared 2-core machine the same training
took about twice as long in one spell as in another (README, "Where the time goes").
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from alfi.io import InputError, atomic_path, write_parquet
from alfi.jobs import check_outputs
from alfi.tables import to_markdown

__all__ = ["METHOD_OF_KIND", "NAME_SUFFIXES", "read_benchmarks", "time_table", "add_commands"]

log = logging.getLogger("alfi")

#: The method a job kind serves, where the two names differ.
METHOD_OF_KIND = {"train": "alfi", "evaluate": "alfi", "dataset": "data"}
#: What follows the simulator in a job's name, per kind (the workflow's log names); an
#: amortised method's kind (``regressor``, ``npe``, …) is any other; ``None``: no simulator.
NAME_SUFFIXES: dict[str, str | None] = {
    "dataset": r"_(train|test)",
    "train": r"_(group\d+|[^_]+_seed\d+)",
    "evaluate": r"_[^_]+_seed\d+",
    "mle": "",
    "posterior": "",
    "prior_mean": "",
    "abc_smc": r"_budget\d+",
    "aggregate": None,
}
AMORTISED_SUFFIX = r"_n\d+_seed\d+"
SUFFIX = ".benchmark.tsv"
UNREADABLE = (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError)


def _simulator(path: Path, kind: str, job: str, simulators: Sequence[str]) -> str:
    """The simulator a job ran, from its name: ``SIMULATOR`` then the kind's suffix."""
    suffix = NAME_SUFFIXES.get(kind, AMORTISED_SUFFIX)
    if suffix is None:
        return ""
    match = re.fullmatch(f"(?P<simulator>.+){suffix}", job)
    if match is None or match["simulator"] not in simulators:
        raise InputError(
            f"{path}: a {kind} job's name is SIMULATOR followed by {suffix or 'nothing'!r}, "
            f"SIMULATOR one of {list(simulators)}; got {job!r}"
        )
    return match["simulator"]


def read_benchmarks(paths: Sequence[str | Path], simulators: Sequence[str]) -> pd.DataFrame:
    """One row per benchmark file (see the module's docstring), in the order given."""
    rows = []
    for path in map(Path, paths):
        if not path.name.endswith(SUFFIX):
            raise InputError(f"{path}: expected a Snakemake benchmark file, NAME{SUFFIX}")
        try:
            frame = pd.read_csv(path, sep="\t")
        except UNREADABLE as error:
            raise InputError(f"{path}: not a readable benchmark table ({error})") from error
        missing = {"s", "cpu_time", "max_rss"} - set(frame.columns)
        if missing or frame.empty:
            raise InputError(
                f"{path}: expected Snakemake's benchmark columns s, cpu_time and max_rss and a "
                f"row, got columns {list(frame.columns)} and {len(frame)} rows"
            )
        # "NA" (or "-") where Snakemake measured nothing: a job too short to sample
        values = frame[["s", "cpu_time", "max_rss"]].apply(pd.to_numeric, errors="coerce")
        if values["s"].isna().any():
            raise InputError(f"{path}: column s: expected seconds, got {frame['s'].tolist()}")
        job = path.name.removesuffix(SUFFIX)
        kind = path.parent.name
        rows.append(
            {
                "kind": kind,
                "method": METHOD_OF_KIND.get(kind, kind),
                "simulator": _simulator(path, kind, job, simulators),
                "job": job,
                "seconds": float(values["s"].mean()),
                "cpu_seconds": float(values["cpu_time"].mean()),
                "max_rss_mb": float(values["max_rss"].mean()),
            }
        )
    return pd.DataFrame(
        rows,
        columns=["kind", "method", "simulator", "job", "seconds", "cpu_seconds", "max_rss_mb"],
    )


def time_table(jobs: pd.DataFrame, simulators: Sequence[str]) -> pd.DataFrame:
    """Job-seconds per (method, kind), largest first: the number of jobs, their sum and share
    of the run's, one column per simulator, and the longest job; a last row ``all`` sums
    every job."""
    total = jobs.seconds.sum()
    rows = []
    for (method, kind), group in jobs.groupby(["method", "kind"], sort=False):
        longest = group.loc[group.seconds.idxmax()]
        per_simulator = group.groupby("simulator").seconds.sum()
        rows.append(
            {
                "method": method,
                "kind": kind,
                "jobs": len(group),
                "job-seconds": group.seconds.sum(),
                "share": group.seconds.sum() / total if total else float("nan"),
                **{s: per_simulator.get(s, 0.0) for s in simulators},
                "longest job": f"{longest.job} ({longest.seconds:.0f} s)",
            }
        )
    columns = ["method", "kind", "jobs", "job-seconds", "share", *simulators, "longest job"]
    table = pd.DataFrame(rows, columns=columns)
    table = table.sort_values("job-seconds", ascending=False, kind="stable")
    every = jobs.groupby("simulator").seconds.sum()
    footer = {"method": "all", "kind": "", "jobs": len(jobs), "job-seconds": total}
    footer |= {"share": 1.0 if total else float("nan"), "longest job": ""}
    footer |= {s: every.get(s, 0.0) for s in simulators}
    if table.empty:  # no job left a benchmark file
        return pd.DataFrame([footer], columns=columns)
    return pd.concat([table, pd.DataFrame([footer], columns=columns)], ignore_index=True)


def _formatted(table: pd.DataFrame, simulators: Sequence[str]) -> pd.DataFrame:
    shown = table.copy()
    for column in ["job-seconds", *simulators]:
        shown[column] = shown[column].map(lambda v: f"{v:.0f}")
    shown["share"] = shown["share"].map(lambda v: f"{100 * v:.0f} %")
    shown["jobs"] = shown["jobs"].astype(str)
    return shown


CAPTION = (
    "Job-seconds of the run's jobs (Snakemake's benchmark files: each job's wall-clock seconds), "
    "per method and job kind and per simulator, and each kind's longest job. Jobs that ran side "
    "by side each count in full: with every one of C cores busy, the run's wall is about the "
    "sum / C. The settings and code stamps and the reports are left out (a few seconds each)."
)


def cmd_timing(args: argparse.Namespace) -> None:
    check_outputs(args.out, args.markdown)
    simulators = [s for s in args.simulators.split(",") if s]
    paths = args.benchmarks
    absent = [path for path in paths if not path.exists()] if args.skip_missing else []
    if absent:  # e.g. results/logs removed: its jobs' results stand, their times are gone
        log.warning("%d jobs have no benchmark file, e.g. %s", len(absent), absent[0])
        paths = [path for path in paths if path.exists()]
    jobs = read_benchmarks(paths, simulators)
    table = _formatted(time_table(jobs, simulators), simulators)
    caption = CAPTION + (f" {len(absent)} of the jobs left no benchmark file." if absent else "")
    write_parquet(args.out, jobs)
    with atomic_path(args.markdown) as tmp:
        tmp.write_text(to_markdown(table) + f"\n{caption}\n", encoding="utf-8")
    log.info("wrote %s and %s from %d jobs", args.out, args.markdown, len(jobs))


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``timing`` sub-command (it sets ``run``)."""
    p = subparsers.add_parser("timing", help="where a run's time goes, from its benchmark files")
    p.add_argument("benchmarks", nargs="+", type=Path, help="Snakemake benchmark files")
    p.add_argument("--simulators", required=True, help="comma-separated simulator names")
    p.add_argument(
        "--skip-missing", action="store_true", help="leave out benchmark files that do not exist"
    )
    p.add_argument("--out", required=True, type=Path, help="Parquet table, a row per job")
    p.add_argument("--markdown", required=True, type=Path, help="the summary, Markdown")
    p.set_defaults(run=cmd_timing)
