"""The workflow's own sub-commands: ``alfi dataset``, ``train``, ``evaluate`` and ``mle``.

Each draws or reads what its rule names, checks its outputs before any work and writes them
atomically (the baselines' commands: :mod:`alfi.baselines`; the reports': :mod:`alfi.report`;
what they share: :mod:`alfi.jobs`).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from alfi.config import ConfigError, settings_for
from alfi.io import load_dataset, save_dataset
from alfi.jobs import (
    add_common_arguments,
    check_outputs,
    digest_draws,
    evaluation_record,
    reference_draws,
    setup,
    write_tables,
)
from alfi.seeds import dataset_seed, evaluation_seed, mle_seed, run_seed
from alfi.stages import training_sets

__all__ = ["add_commands", "cmd_dataset", "cmd_train", "cmd_evaluate", "cmd_mle"]

log = logging.getLogger("alfi")


def cmd_dataset(args: argparse.Namespace) -> None:
    """``alfi dataset``: draw the train or test meta-dataset of one simulator (its own seed)."""
    from alfi.data import make_dataset
    from alfi.provenance import code_digest, source_files
    from alfi.simulators import get_simulator

    config, settings, device = setup(args)
    check_outputs(args.out)
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
    """``alfi train``: meta-train one model per ``--out``, together as one batched ensemble,
    each resuming from its ``--checkpoint`` when that matches its provenance."""
    import torch

    from alfi.checkpoints import save_model
    from alfi.config import parse_variant
    from alfi.simulators import get_simulator
    from alfi.train_ensemble import train_ensemble

    config, _, device = setup(args)
    members = _members(args)
    for variant, _ in members:
        parse_variant(variant)
    settings = _group_settings(config, args.simulator, members)
    checkpoints = args.checkpoint or [None] * len(members)
    check_outputs(*args.out, *checkpoints)
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


def cmd_evaluate(args: argparse.Namespace) -> None:
    """``alfi evaluate``: run a trained model on a test meta-dataset to every ``--t-test`` (one
    unroll to the largest) and write its tables per horizon, with a C2ST given ``--reference``."""
    from alfi.checkpoints import load_model
    from alfi.data import make_generator
    from alfi.evaluate import run_alfi_horizons, training_cost
    from alfi.provenance import digest
    from alfi.simulators import get_simulator

    config, _, device = setup(args)
    horizons = args.t_test
    if min(horizons) < 1 or len(set(horizons)) != len(horizons):
        raise ConfigError(f"--t-test must be distinct values >= 1, got {horizons}")
    for table in ("estimates", "metrics", "samples"):
        if len(getattr(args, table)) != len(horizons):
            raise ConfigError(
                f"--{table} has {len(getattr(args, table))} paths for {len(horizons)} --t-test "
                "values; expected one per value"
            )
    check_outputs(*args.estimates, *args.metrics, *args.samples)
    exact = reference_draws(args.reference)
    reference_digest = digest_draws(exact)
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
        record = evaluation_record(
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
        write_tables(
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


def cmd_mle(args: argparse.Namespace) -> None:
    """``alfi mle``: the exact maximum-likelihood estimate of every test problem, as tables."""
    from alfi.data import make_generator
    from alfi.evaluate import run_mle
    from alfi.provenance import digest
    from alfi.simulators import get_simulator

    config, settings, device = setup(args)
    check_outputs(args.estimates, args.metrics, args.samples)
    simulator = get_simulator(args.simulator)
    data = load_dataset(args.dataset, simulator)
    seed = mle_seed(config["seed"], simulator.name)
    trajectory = run_mle(simulator, data, make_generator(seed, device))
    histograms = settings["evaluate"]["histograms"]
    record = evaluation_record("mle", simulator, data, device, seed=seed, histograms=histograms)
    write_tables(
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


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``dataset``, ``train``, ``evaluate`` and ``mle`` to ``alfi``'s parser."""
    p = sub.add_parser("dataset", help="draw a meta-dataset of (theta*, real observations)")
    add_common_arguments(p)
    p.add_argument("--split", required=True, choices=("train", "test"))
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(run=cmd_dataset)

    p = sub.add_parser(
        "train",
        help="meta-train ALFI (resumes from --checkpoint); several --out: one batched ensemble",
    )
    add_common_arguments(p)
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
        add_common_arguments(p, simulator=name == "mle")
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
