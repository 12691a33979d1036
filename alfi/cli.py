"""Command line: ``alfi <step> …`` (also ``python -m alfi``), one sub-command per workflow step.

Every step reads the validated YAML config, checks its inputs, writes its outputs atomically and
exits with status 2 and one line naming the bad value when something is wrong.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import numpy as np
    import torch

from alfi.config import ConfigError, load_config, settings_for, training_sets
from alfi.io import (
    InputError,
    check_output,
    load_dataset,
    read_parquet,
    save_dataset,
    write_parquet,
)
from alfi.seeds import dataset_seed, evaluation_seed, mle_seed, run_seed

__all__ = ["main"]

log = logging.getLogger("alfi")


def _common(parser: argparse.ArgumentParser, simulator: bool = True) -> None:
    parser.add_argument("--config", required=True, type=Path, help="YAML config file")
    if simulator:
        parser.add_argument("--simulator", required=True, help="simulator name")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda (default: config)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def _setup(args: argparse.Namespace) -> tuple[dict, dict | None, torch.device]:
    import torch

    from alfi.data import resolve_device
    from alfi.simulators import get_simulator

    config = load_config(args.config)
    settings = None
    if getattr(args, "simulator", None) is not None:
        get_simulator(args.simulator)  # clear error for an unknown name
        settings = settings_for(config, args.simulator)
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    return config, settings, resolve_device(args.device or config["device"])


def _outputs(*paths: Path | None) -> None:
    """Check every output path before any work (see :func:`alfi.io.check_output`)."""
    for path in paths:
        if path is not None:
            check_output(path)


def cmd_dataset(args: argparse.Namespace) -> None:
    from alfi.data import make_dataset
    from alfi.provenance import code_digest, source_files
    from alfi.simulators import get_simulator

    config, settings, device = _setup(args)
    _outputs(args.out)
    simulator = get_simulator(args.simulator)
    sizes = settings["dataset"]
    n = sizes["n_train"] if args.split == "train" else sizes["n_test"]
    seed = dataset_seed(config["seed"], args.simulator, args.split)
    record = {
        "kind": "dataset",
        "simulator": simulator.name,
        "split": args.split,
        "problems": n,
        "n_real": sizes["n_real"],
        "seed": seed,
        "device": device.type,
        "code": code_digest(source_files(simulator, "dataset")),
    }
    data = make_dataset(simulator, n, sizes["n_real"], seed, str(device), record)
    save_dataset(args.out, data)
    log.info("wrote %s: %d problems x %d observations", args.out, n, sizes["n_real"])


def _members(args: argparse.Namespace) -> list[tuple[str, int]]:
    """The ``(variant, seed)`` of each ``--out``: ``--variant`` and ``--seed`` give one value per
    output, or one value for all of them."""
    n = len(args.out)
    for name, counts in (("variant", {1, n}), ("seed", {1, n}), ("checkpoint", {n})):
        values = getattr(args, name)
        if values is not None and len(values) not in counts:
            expected = " or ".join(str(c) for c in sorted(counts))
            raise ConfigError(
                f"--{name} has {len(values)} values for {n} --out paths; expected {expected}"
            )
    variants = args.variant * n if len(args.variant) == 1 else args.variant
    seeds = args.seed * n if len(args.seed) == 1 else args.seed
    members = list(zip(variants, seeds, strict=True))
    if len(set(members)) != n:
        raise ConfigError(f"the models to train must differ; got (variant, seed) {members}")
    paths = [Path(p).resolve() for p in (*args.out, *(args.checkpoint or ()))]
    repeated = sorted({str(p) for p in paths if paths.count(p) > 1})
    if repeated:
        raise ConfigError(
            f"{', '.join(repeated)} given more than once among --out and --checkpoint; "
            "expected one file per model and per checkpoint"
        )
    return members


def _group_settings(config: dict, simulator: str, members: list[tuple[str, int]]) -> dict:
    """The one set of settings the models of a group train under (an ensemble shares every
    setting but how often it writes checkpoints: the first member's); a clear error when
    ``variant_overrides`` gives its variants different ones."""
    sets = training_sets(config, simulator, members)
    if len(sets) > 1:
        names = " | ".join(", ".join(dict.fromkeys(v for v, _ in group)) for group in sets)
        raise ConfigError(
            "the models of one training group share their settings, but variant_overrides "
            f"gives its variants {len(sets)} different sets of them ({names}); "
            "expected one `alfi train` per set"
        )
    return settings_for(config, simulator, members[0][0])


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from alfi.checkpoints import save_model
    from alfi.config import parse_variant
    from alfi.simulators import get_simulator
    from alfi.train_ensemble import train_ensemble

    config, _, device = _setup(args)
    members = _members(args)
    for variant, _ in members:
        parse_variant(variant)
    settings = _group_settings(config, args.simulator, members)
    checkpoints = args.checkpoint or [None] * len(members)
    _outputs(*args.out, *checkpoints)
    log.info(
        "device %s, torch %s, %d threads, SLURM_JOB_ID=%s, CUDA_VISIBLE_DEVICES=%s",
        device,
        torch.__version__,
        torch.get_num_threads(),
        os.environ.get("SLURM_JOB_ID"),
        os.environ.get("CUDA_VISIBLE_DEVICES"),
    )
    simulator = get_simulator(args.simulator)
    data = load_dataset(args.dataset, simulator)
    results = train_ensemble(
        simulator,
        data,
        settings,
        [(variant, run_seed(config["seed"], seed)) for variant, seed in members],
        device=device,
        checkpoints=checkpoints,
        progress=not args.quiet,
        cuda_graph=config["cuda_graphs"],
    )
    for out, (variant, seed), result in zip(args.out, members, results, strict=True):
        save_model(
            out,
            result.model,
            simulator,
            settings,
            variant=variant,
            seed=seed,
            history=result.history,
            provenance=result.provenance,
        )
        log.info(
            "wrote %s after %d steps (fingerprint %s)",
            out,
            result.steps_done,
            result.provenance["fingerprint"],
        )


def _write_tables(paths: Sequence[Path], simulator, trajectory, data, **keys) -> None:
    """The estimates, metrics and samples tables of one run, to ``paths`` in that order."""
    from alfi.results import trajectory_tables

    tables = trajectory_tables(simulator, trajectory, data, **keys)
    for path, frame in zip(paths, tables, strict=True):
        write_parquet(path, frame)
        log.info("wrote %s (%d rows)", path, len(frame))


def _evaluation_record(kind: str, simulator, data, device, **inputs) -> dict:
    from alfi.provenance import code_digest, source_files

    return {
        "kind": kind,
        "simulator": simulator.name,
        "data": data.fingerprint,
        "device": device.type,
        "code": code_digest(source_files(simulator, kind)),
        **inputs,
    }


def cmd_evaluate(args: argparse.Namespace) -> None:
    from alfi.checkpoints import load_model
    from alfi.data import make_generator
    from alfi.evaluate import run_alfi_horizons, training_cost
    from alfi.provenance import digest
    from alfi.simulators import get_simulator

    config, _, device = _setup(args)
    horizons = args.t_test
    if min(horizons) < 1 or len(set(horizons)) != len(horizons):
        raise ConfigError(f"--t-test must be distinct values >= 1, got {horizons}")
    for table in ("estimates", "metrics", "samples"):
        if len(getattr(args, table)) != len(horizons):
            raise ConfigError(
                f"--{table} has {len(getattr(args, table))} paths for {len(horizons)} --t-test "
                "values; expected one per value"
            )
    _outputs(*args.estimates, *args.metrics, *args.samples)
    exact = _reference_draws(args.reference)
    reference_digest = _digest_draws(exact)
    model, state = load_model(args.model, device)
    simulator = get_simulator(state["simulator"])
    data = load_dataset(args.dataset, simulator)
    # How to evaluate comes from the config; how the model simulates (B, M, the initial scale)
    # is part of what it was trained with.
    ev, tr = settings_for(config, simulator.name)["evaluate"], state["settings"]["train"]
    seed = evaluation_seed(
        config["seed"], simulator.name, state["variant"], state["seed"], horizons
    )
    trajectories = run_alfi_horizons(
        model,
        simulator,
        data,
        horizons=horizons,
        inits=ev["inits"],
        n_theta=tr["n_theta"],
        n_sim=tr["n_sim"],
        generator=make_generator(seed, device),
        initial_log_scale=tr["initial_log_scale"],
        chunk=ev["chunk"],
        draws=ev["draws"],
    )
    for i, t_test in enumerate(horizons):
        trajectory = trajectories[t_test]
        c2st = None
        if args.reference is not None and ev["c2st_problems"]:
            from alfi.baselines import reference_c2st

            c2st = reference_c2st(trajectory.draws, exact, ev, config["seed"])
        record = _evaluation_record(
            "evaluate",
            simulator,
            data,
            device,
            model=state.get("provenance", {}).get("fingerprint"),
            evaluate=ev,
            t_test=t_test,
            t_tests=horizons,
            seed=seed,
            reference=reference_digest,
        )
        _write_tables(
            (args.estimates[i], args.metrics[i], args.samples[i]),
            simulator,
            trajectory,
            data,
            method="alfi",
            variant=state["variant"],
            seed=state["seed"],
            t_test=t_test,
            fingerprint=digest(record),
            histograms=ev["histograms"],
            training=training_cost(state),
            c2st=c2st,
        )


def _reference_draws(path: Path | None) -> np.ndarray | None:
    """The exact draws of ``--reference`` (``None``: none given), read once, before any work, so
    that a bad file stops the command there; its C2ST and its digest use these."""
    from alfi.baselines import load_reference_draws

    return None if path is None else load_reference_draws(path)


def _digest_draws(draws: np.ndarray | None) -> str | None:
    from alfi.provenance import array_digest

    return None if draws is None else array_digest(draws)


def cmd_mle(args: argparse.Namespace) -> None:
    from alfi.data import make_generator
    from alfi.evaluate import run_mle
    from alfi.provenance import digest
    from alfi.simulators import get_simulator

    config, settings, device = _setup(args)
    _outputs(args.estimates, args.metrics, args.samples)
    simulator = get_simulator(args.simulator)
    data = load_dataset(args.dataset, simulator)
    seed = mle_seed(config["seed"], simulator.name)
    trajectory = run_mle(simulator, data, make_generator(seed, device))
    histograms = settings["evaluate"]["histograms"]
    record = _evaluation_record("mle", simulator, data, device, seed=seed, histograms=histograms)
    _write_tables(
        (args.estimates, args.metrics, args.samples),
        simulator,
        trajectory,
        data,
        method="mle",
        variant="exact",
        seed=0,
        t_test=0,
        fingerprint=digest(record),
        histograms=histograms,
    )


def cmd_aggregate(args: argparse.Namespace) -> None:
    _outputs(args.out)
    frames = [read_parquet(path) for path in args.inputs]
    if not frames:
        raise InputError("aggregate needs at least one input table")
    columns = list(frames[0].columns)
    for path, frame in zip(args.inputs, frames, strict=True):
        if list(frame.columns) != columns:
            raise InputError(f"{path}: columns {list(frame.columns)} differ from {columns}")
    write_parquet(args.out, pd.concat(frames, ignore_index=True))
    log.info("wrote %s from %d tables", args.out, len(frames))


def cmd_list(args: argparse.Namespace) -> None:
    from alfi.simulators import available, get_simulator

    for name in available():
        sim = get_simulator(name)
        box = ", ".join(
            f"{p} in [{lo:g}, {hi:g}]"
            for p, lo, hi in zip(sim.parameter_names, sim.prior_low, sim.prior_high, strict=True)
        )
        print(f"{name:18s} X={sim.observation_dim}  {box}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alfi", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STEP")

    p = sub.add_parser("list", help="list the registered simulators")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("dataset", help="draw a meta-dataset of (theta*, real observations)")
    _common(p)
    p.add_argument("--split", required=True, choices=("train", "test"))
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(run=cmd_dataset)

    p = sub.add_parser(
        "train",
        help="meta-train ALFI (resumes from --checkpoint); several --out: one batched ensemble",
    )
    _common(p)
    p.add_argument(
        "--variant", nargs="+", default=["nll-exp"], help="LOSS-WEIGHTING per --out, e.g. nll-exp"
    )
    p.add_argument(
        "--seed",
        type=int,
        nargs="+",
        default=[0],
        help="training seed per --out (with config seed)",
    )
    p.add_argument("--dataset", required=True, type=Path)
    p.add_argument("--checkpoint", type=Path, nargs="+", default=None, help="one per --out")
    p.add_argument("--out", required=True, type=Path, nargs="+", help="model file(s) to write")
    p.set_defaults(run=cmd_train)

    for name, run, text in (
        ("evaluate", cmd_evaluate, "run a trained model on a test meta-dataset"),
        ("mle", cmd_mle, "the exact MLE on a test meta-dataset"),
    ):
        p = sub.add_parser(name, help=text)
        _common(p, simulator=name == "mle")
        if name == "evaluate":
            p.add_argument("--model", required=True, type=Path)
            p.add_argument(
                "--t-test", required=True, type=int, nargs="+", help="one or more horizons"
            )
            p.add_argument("--reference", type=Path, default=None, help="exact draws, for C2ST")
        p.add_argument("--dataset", required=True, type=Path)
        for table in ("estimates", "metrics", "samples"):
            many = dict(nargs="+", help="one per --t-test") if name == "evaluate" else {}
            p.add_argument(f"--{table}", required=True, type=Path, **many)
        p.set_defaults(run=run)

    p = sub.add_parser("aggregate", help="concatenate result tables of the same schema")
    p.add_argument("inputs", nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(run=cmd_aggregate)

    from alfi import baselines, report

    report.add_commands(sub)
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
    from alfi.divergence import NonFiniteLossError

    retain_freed_memory()  # Poisson's, Weinberg's training steps 0.81-0.95x; no number moves
    try:
        args.run(args)
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
