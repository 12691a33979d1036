"""Benchmarks: ``alfi bench`` runs the parts asked and writes each one's Parquet table under
``results/benchmarks/``, then prints them.

1. ``throughput`` — simulated observations per second at the shapes training uses.
2. ``step`` — meta-training step time at the paper's hyper-parameters, split into simulate,
   forward (the unroll minus simulation) and backward + optimiser step; median and quartiles.
3. ``ensemble`` — the step of a batched ensemble of ``G`` models (:mod:`alfi.ensemble_step`)
   against one model's, per model, eager and (on CUDA) replayed from a CUDA graph
   (:mod:`alfi.cuda_graph`), and the paper grid's projected hours at each ``G``.
4. ``evaluate`` — paper-scale evaluation (K = 500 inits, T_test = 30): problems per second and
   the projected time for 500 problems.
5. ``accuracy`` — test RMSE against training wall-clock for Poisson (on θ) and Weinberg (on the
   identifiable a(θ)), the MLE's RMSE on the same problems beside it.

The first three are :mod:`alfi.bench_speed`, the last two :mod:`alfi.bench_evaluation`, on the
settings and instruments of :mod:`alfi.bench_harness`. Each row carries peak memory: CUDA's peak
allocation, or on CPU the process's peak resident set (reset before each measurement through
``/proc/self/clear_refs`` where Linux allows), and the machine it was measured on.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from alfi.bench_evaluation import bench_accuracy, bench_evaluate
from alfi.bench_harness import paper_config
from alfi.bench_speed import bench_ensemble, bench_step, bench_throughput
from alfi.data import resolve_device
from alfi.io import check_output, write_parquet

PARTS = ("throughput", "step", "ensemble", "evaluate", "accuracy")

__all__ = ["PARTS", "machine", "run_benchmarks", "run_from_args"]


def machine() -> dict[str, Any]:
    """The columns every table carries about where it was measured (``device`` aside)."""
    device_name = platform.processor() or platform.machine()
    return {
        "machine": platform.node(),
        "cpu": device_name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def run_benchmarks(
    out_dir: Path, device: torch.device, parts: list[str], quick: bool, budgets: dict[str, float]
) -> dict[str, pd.DataFrame]:
    """Run ``parts`` (of :data:`PARTS`) and write each one's table to ``out_dir/{part}.parquet``
    as soon as it is measured (every output path is checked first, so a bad folder stops before
    minutes of measurements, and a failure in a later part keeps the earlier tables)."""
    for part in parts:
        check_output(out_dir / f"{part}.parquet")
    info = machine() | {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device)
    }
    names = paper_config()["simulators"]

    def measure(part: str) -> list[dict]:
        if part == "throughput":
            return [bench_throughput(n, device) for n in names]
        if part == "step":
            return [bench_step(n, device, steps=5 if quick else 30) for n in names]
        if part == "ensemble":
            sizes = (1, 2) if quick else (1, 6, 18)
            return [
                row for n in names for row in bench_ensemble(n, device, sizes, 3 if quick else 20)
            ]
        if part == "evaluate":
            return [bench_evaluate(n, device, problems=2 if quick else 8) for n in names]
        return [
            row
            for name, budget in budgets.items()
            for row in bench_accuracy(
                name,
                device,
                budget,
                evaluations=2 if quick else 10,
                test_problems=20 if quick else 200,
            )
        ]

    tables: dict[str, pd.DataFrame] = {}
    for part in PARTS:  # in this order, whatever the order asked
        if part in parts:
            tables[part] = pd.DataFrame(measure(part)).assign(**info)
            write_parquet(out_dir / f"{part}.parquet", tables[part])
    return tables


def _print(tables: dict[str, pd.DataFrame]) -> None:
    info_cols = ["machine", "cpu", "torch", "threads", "device"]
    first = next(iter(tables.values()))
    print("  ".join(f"{c}={first[c].iloc[0]}" for c in info_cols))
    with pd.option_context(
        "display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format
    ):
        for kind, frame in tables.items():
            print(f"\n## {kind}\n{frame.drop(columns=info_cols).to_string(index=False)}")
        if "ensemble" in tables:
            grid = tables["ensemble"].groupby(["group_size", "cuda_graph"])["grid_hours"].sum()
            print(f"\n## paper grid, projected hours on this device\n{grid.to_string()}")


def run_from_args(args: argparse.Namespace) -> None:
    """``alfi bench``: the arguments as :func:`alfi.cli.build_parser` defines them."""
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads {args.threads}: expected an integer >= 1")
    for name in ("poisson_seconds", "weinberg_seconds"):
        if not getattr(args, name) > 0:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} {getattr(args, name)}: expected a positive number of seconds")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    parts = args.only.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown benchmark part(s) {unknown}; expected {', '.join(PARTS)}")
    budgets = {"poisson": args.poisson_seconds, "weinberg": args.weinberg_seconds}
    if args.quick:
        budgets = {k: min(v, 10.0) for k, v in budgets.items()}
    _print(run_benchmarks(args.out_dir, device, parts, args.quick, budgets))
