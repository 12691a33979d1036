"""Methods beside ALFI and the MLE, run by ``alfi baseline --method NAME``; their C2ST.

=============  ============================================================================
``posterior``  the exact posterior on a grid (:mod:`alfi.reference`): its mean, std and draws;
               its draws are the reference every other method's C2ST is measured against
``prior_mean`` the negative control: the prior's mean, std and draws, whatever the data
``regressor``  the amortisation control: ALFI's encoder with a regression head
               (:mod:`alfi.regressor`), trained on the training meta-dataset
``npe``        sbi's neural posterior estimation (:mod:`alfi.npe`), trained on the same set
``abc_smc``    sbi's SMC-ABC (:mod:`alfi.abc`) on the first test problems, at a budget of
               simulated observations per problem (``--budget``)
=============  ============================================================================

Each run writes the same ``estimates``, ``metrics`` and ``samples`` tables as an ALFI evaluation
(:mod:`alfi.results`), with ``t_test = 0``, ``variant`` ``exact`` for the posterior, ``budgetN`` for
SMC-ABC at a budget of ``N``, ``nN`` for an amortised method trained on the first ``N`` training
problems (``--train-size``) and the method's name otherwise, and the training cost in
``metrics``.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from alfi.columns import BASELINES
from alfi.io import InputError, MetaDataset, read_npz

__all__ = [
    "REQUIREMENTS",
    "missing_requirements",
    "has_likelihood",
    "load_reference_draws",
    "reference_c2st",
    "add_commands",
]

log = logging.getLogger("alfi")

#: Optional packages (import name) each method needs; ``c2st`` is the C2ST of any method.
REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "npe": ("sbi",),
    "abc_smc": ("sbi",),
    "c2st": ("sbi",),
}
INSTALL = "pip install -e '.[baselines]'"


def missing_requirements(needs: Iterable[str]) -> list[str]:
    """One message per method or feature in ``needs`` whose optional package is not installed."""
    return [
        f"{need!r} needs the optional package {package}; install it with: {INSTALL}"
        for need in needs
        for package in REQUIREMENTS.get(need, ())
        if not _installed(package)
    ]


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a broken install, or an import hook that refuses it
        return False


def has_likelihood(simulator: Any) -> bool:
    """Whether ``simulator`` implements :meth:`~alfi.simulators.Simulator.log_likelihood`, which
    the exact posterior (and so the C2ST) needs; a plugin may leave it out."""
    from alfi.simulators import Simulator

    return type(simulator).log_likelihood is not Simulator.log_likelihood


def save_draws(path: Path, draws: Any) -> None:
    from alfi.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, draws=draws.numpy())


def load_reference_draws(path: Path) -> np.ndarray:
    """The exact posterior's draws ``(N, S, D)`` that the ``posterior`` rule writes
    (``--draws-out``); :class:`InputError` naming the file and what was expected otherwise."""
    expected = "an exact-draws file (.npz with draws (N, S, D), written by the posterior rule)"
    draws = read_npz(path, "reference draws", expected, ("draws",))["draws"]
    if draws.ndim != 3 or draws.dtype.kind != "f":
        raise InputError(f"{path} is not {expected}: draws of shape {draws.shape}, {draws.dtype}")
    return draws


def reference_c2st(
    draws: Any, reference: Path | np.ndarray, evaluate: dict[str, Any], seed: int
) -> np.ndarray:
    """C2ST (:func:`alfi.calibration.c2st`) of a method's ``draws`` ``(N, S, D)`` against the exact
    posterior's draws ``reference`` (the ``.npz`` or its loaded draws), on the first
    ``evaluate["c2st_problems"]`` problems, with a forest of ``evaluate["c2st_trees"]`` trees."""
    from alfi.calibration import c2st

    problems = evaluate["c2st_problems"]
    loaded = isinstance(reference, np.ndarray)
    exact = reference if loaded else load_reference_draws(reference)
    if exact.shape[0] < min(problems, len(draws)) or exact.shape[2] != draws.shape[2]:
        where = "the exact draws" if loaded else str(reference)
        raise InputError(f"{where}: draws {exact.shape} do not match the method's {draws.shape}")
    n = min(problems, len(draws))
    return c2st(draws[:n].numpy(), exact[:n], seed=seed, trees=evaluate["c2st_trees"])


def _run(args: argparse.Namespace, config, settings, device, simulator, data, train_data):
    """The trajectory and training cost of ``args.method`` on the test set ``data``."""
    from alfi.data import make_generator
    from alfi.seeds import amortised_training_seed, baseline_seed

    draws = settings["evaluate"]["draws"]
    seed = baseline_seed(config["seed"], args.method, simulator.name, args.seed)
    generator = make_generator(seed, device)
    if args.method == "posterior":
        from alfi.reference import run_reference

        return run_reference(simulator, data, generator, draws), None
    if args.method == "prior_mean":
        from alfi.evaluate import run_prior

        return run_prior(simulator, data, generator, draws), None
    if args.method == "abc_smc":
        from alfi.abc import run_abc

        if args.budget is None:
            raise InputError("method 'abc_smc' needs --budget (simulated observations per problem)")
        return run_abc(
            simulator,
            data,
            generator,
            settings=settings,
            budget=args.budget,
            problems=settings["baselines"]["abc_smc"]["problems"],
            seed=seed,
            draws=draws,
        ), None
    if train_data is None:
        raise InputError(f"method {args.method!r} needs --train-dataset")
    train_seed = amortised_training_seed(config["seed"], args.seed)
    if args.method == "regressor":
        from alfi.regressor import fit_regressor, run_regressor

        model, cost = fit_regressor(simulator, train_data, settings, seed=train_seed, device=device)
        return run_regressor(model, simulator, data, generator), cost
    from alfi.npe import fit_npe, run_npe

    npe, cost = fit_npe(simulator, train_data, settings, seed=train_seed, device=device)
    return run_npe(npe, simulator, data, generator, seed=train_seed, draws=draws), cost


#: The workflow stage (settings stamp, :func:`alfi.stages.stage_settings`) of each method:
#: what its provenance records and what reruns it.
_STAGE = {
    "posterior": "posterior",
    "prior_mean": "reference",
    "regressor": "regressor",
    "npe": "npe",
    "abc_smc": "abc_smc",
}


def _variant(args: argparse.Namespace, train_data: MetaDataset | None) -> str:
    if args.method == "posterior":
        return "exact"
    if args.method == "abc_smc":
        return f"budget{args.budget}"
    return f"n{len(train_data)}" if train_data is not None else args.method


def _training_subset(data: MetaDataset, size: int | None) -> MetaDataset:
    """The first ``size`` problems of the training meta-dataset (all of them for ``None``)."""
    from alfi.config import MIN_TRAIN_PROBLEMS

    if size is None:
        return data
    if not MIN_TRAIN_PROBLEMS <= size <= len(data):
        raise InputError(
            f"--train-size {size}: expected {MIN_TRAIN_PROBLEMS} (NPE holds a tenth out to stop "
            f"on) to {len(data)}, the training problems"
        )
    return data.head(size)


def cmd_baseline(args: argparse.Namespace) -> None:
    from alfi.io import load_dataset
    from alfi.jobs import (
        check_outputs,
        digest_draws,
        evaluation_record,
        reference_draws,
        setup,
        write_tables,
    )
    from alfi.provenance import digest
    from alfi.simulators import get_simulator
    from alfi.stages import stage_settings

    config, settings, device = setup(args)
    check_outputs(args.estimates, args.metrics, args.samples, args.draws_out)
    for message in missing_requirements([args.method] + (["c2st"] if args.reference else [])):
        raise InputError(message)
    exact = reference_draws(args.reference)
    simulator = get_simulator(args.simulator)
    data = load_dataset(args.dataset, simulator)
    train_data = load_dataset(args.train_dataset, simulator) if args.train_dataset else None
    if train_data is not None:
        train_data = _training_subset(train_data, args.train_size)
    elif args.train_size is not None:
        raise InputError("--train-size needs --train-dataset")
    if args.method == "abc_smc":  # one SMC run per problem: on the first few only
        data = data.head(settings["baselines"]["abc_smc"]["problems"])
    trajectory, cost = _run(args, config, settings, device, simulator, data, train_data)
    ev = settings["evaluate"]
    c2st = None
    if args.reference is not None and trajectory.draws is not None and ev["c2st_problems"]:
        c2st = reference_c2st(trajectory.draws, exact, ev, config["seed"])
    if args.draws_out is not None:
        if trajectory.draws is None:
            raise InputError(f"--draws-out needs evaluate.draws > 0 (method {args.method!r})")
        save_draws(args.draws_out, trajectory.draws)
    record = evaluation_record(
        args.method,
        simulator,
        data,
        device,
        seed=args.seed,
        root=config["seed"],
        settings=stage_settings(config, simulator.name, _STAGE[args.method]),
        train=train_data.fingerprint if train_data is not None else None,
        reference=digest_draws(exact),
    )
    write_tables(
        (args.estimates, args.metrics, args.samples),
        simulator,
        trajectory,
        data,
        method=args.method,
        variant=_variant(args, train_data),
        seed=args.seed,
        t_test=0,
        fingerprint=digest(record),
        histograms=ev["histograms"],
        training=cost,
        c2st=c2st,
    )


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    from alfi.jobs import add_common_arguments

    p = subparsers.add_parser("baseline", help="run a baseline method on a test meta-dataset")
    add_common_arguments(p)
    p.add_argument("--method", required=True, choices=BASELINES)
    p.add_argument("--seed", type=int, default=0, help="training seed (combined with config seed)")
    p.add_argument("--train-dataset", type=Path, default=None, help="for regressor and npe")
    p.add_argument(
        "--train-size", type=int, default=None, help="train on the first N problems only"
    )
    p.add_argument("--dataset", required=True, type=Path, help="the test meta-dataset")
    p.add_argument("--reference", type=Path, default=None, help="exact draws (.npz), for C2ST")
    p.add_argument("--draws-out", type=Path, default=None, help="write the draws here (.npz)")
    p.add_argument("--budget", type=int, default=None, help="abc_smc: observations per problem")
    for table in ("estimates", "metrics", "samples"):
        p.add_argument(f"--{table}", required=True, type=Path)
    p.set_defaults(run=cmd_baseline)
