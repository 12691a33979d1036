"""``alfi dataset``: draw one simulator's train or test meta-dataset (the ``dataset`` stage).

Its code is among the ``dataset`` stage's inputs (:data:`alfi.provenance.STAGE_MODULES`): how
many problems are drawn, from which seed, is decided here.
"""

from __future__ import annotations

import argparse
import logging

from alfi.io import save_dataset
from alfi.jobs import check_outputs, setup
from alfi.seeds import dataset_seed

__all__ = ["cmd_dataset"]

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
