"""Command line: ``alfi <step> …`` (also ``python -m alfi``), one sub-command per workflow step.

Every step reads the validated YAML config, checks its inputs, writes its outputs atomically and
exits with status 2 and one line naming the bad value when something is wrong (status 3, with the
same one line, when a training diverged: :class:`~alfi.divergence.TrainingDivergedError`, a
result a study may count rather than a fault). The commands live
beside what they run: :mod:`alfi.commands` (data, ALFI's training and evaluation, the MLE),
:mod:`alfi.baselines`, :mod:`alfi.report`, :mod:`alfi.timing` and :mod:`alfi.bench`; here, the
parser (with the ``list``, ``aggregate`` and ``bench`` arguments) and the exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from alfi.config import ConfigError
from alfi.io import InputError, read_parquet, write_parquet
from alfi.jobs import check_outputs

__all__ = ["EXIT_DIVERGED", "build_parser", "main"]

EXIT_DIVERGED = 3  # the training's own divergence, told apart from bad input (2) by scripts

log = logging.getLogger("alfi")


def cmd_list(args: argparse.Namespace) -> None:
    from alfi.simulators import available, get_simulator

    for name in available():
        sim = get_simulator(name)
        box = ", ".join(
            f"{p} in [{lo:g}, {hi:g}]"
            for p, lo, hi in zip(sim.parameter_names, sim.prior_low, sim.prior_high, strict=True)
        )
        print(f"{name:18s} X={sim.observation_dim}  {box}")


def cmd_aggregate(args: argparse.Namespace) -> None:
    check_outputs(args.out)
    frames = [read_parquet(path) for path in args.inputs]
    if not frames:
        raise InputError("aggregate needs at least one input table")
    columns = list(frames[0].columns)
    for path, frame in zip(args.inputs, frames, strict=True):
        if list(frame.columns) != columns:
            raise InputError(f"{path}: columns {list(frame.columns)} differ from {columns}")
    write_parquet(args.out, pd.concat(frames, ignore_index=True))
    log.info("wrote %s from %d tables", args.out, len(frames))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alfi", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STEP")

    p = sub.add_parser("list", help="list the registered simulators")
    p.set_defaults(run=cmd_list)

    from alfi import baselines, commands, report, timing

    commands.add_commands(sub)
    p = sub.add_parser("aggregate", help="concatenate result tables of the same schema")
    p.add_argument("inputs", nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(run=cmd_aggregate)

    report.add_commands(sub)
    timing.add_commands(sub)
    baselines.add_commands(sub)
    _add_bench(sub)
    return parser


def _run_bench(args: argparse.Namespace) -> None:
    from alfi.bench import run_from_args

    run_from_args(args)


def _add_bench(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="measure speed, memory and time to accuracy")
    p.add_argument("--out-dir", type=Path, default=Path("results/benchmarks"))
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--only", default="throughput,step,ensemble,evaluate,accuracy", help="comma-separated parts"
    )
    p.add_argument("--poisson-seconds", type=float, default=300.0)
    p.add_argument("--weinberg-seconds", type=float, default=600.0)
    p.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    p.set_defaults(run=_run_bench)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from alfi.allocator import retain_freed_memory
    from alfi.divergence import NonFiniteLossError, TrainingDivergedError

    retain_freed_memory()  # Poisson's, Weinberg's training steps 0.81-0.95x; no number moves
    try:
        args.run(args)
    except TrainingDivergedError as exc:
        print(f"alfi {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except (ConfigError, InputError, NonFiniteLossError, ValueError, RuntimeError) as exc:
        print(f"alfi {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file system refusal the checks above did not foresee
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"alfi {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
