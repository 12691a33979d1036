"""``alfi train``: meta-train one model per ``--out``, together as one batched ensemble (the
``train`` stage).

Its code is among the ``train`` stage's inputs (:data:`alfi.provenance.STAGE_MODULES`): which
settings a group trains under and which seed each member draws from are decided here.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from alfi.config import ConfigError, settings_for
from alfi.io import load_dataset
from alfi.jobs import check_outputs, setup
from alfi.seeds import run_seed
from alfi.stages import training_sets

__all__ = ["cmd_train"]

log = logging.getLogger("alfi")


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
