"""``alfi mle``: the exact maximum-likelihood estimate of every test problem (the ``mle`` stage).

Its code is among the ``mle`` stage's inputs (:data:`alfi.provenance.STAGE_MODULES`).
"""

from __future__ import annotations

import argparse

from alfi.io import load_dataset
from alfi.jobs import check_outputs, evaluation_record, setup, write_tables
from alfi.seeds import mle_seed

__all__ = ["cmd_mle"]


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
