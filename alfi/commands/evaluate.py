"""``alfi evaluate``: run a trained model on a test meta-dataset to every horizon (the
``evaluate`` stage).

Its code is among the ``evaluate`` stage's inputs (:data:`alfi.provenance.STAGE_MODULES`): the
evaluation settings, the seed and how the model simulates (its training's B, M and initial
scale) are wired to :func:`alfi.evaluate_alfi.run_alfi_horizons` here.
"""

from __future__ import annotations

import argparse

from alfi.config import ConfigError, settings_for
from alfi.io import load_dataset
from alfi.jobs import (
    check_outputs,
    digest_draws,
    evaluation_record,
    reference_draws,
    setup,
    write_tables,
)
from alfi.seeds import evaluation_seed

__all__ = ["cmd_evaluate"]


def cmd_evaluate(args: argparse.Namespace) -> None:
    """``alfi evaluate``: run a trained model on a test meta-dataset to every ``--t-test`` (one
    unroll to the largest) and write its tables per horizon, with a C2ST given ``--reference``."""
    from alfi.checkpoints import load_model
    from alfi.data import make_generator
    from alfi.evaluate_alfi import run_alfi_horizons, training_cost
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
