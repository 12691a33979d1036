"""What every job command shares: arguments, set-up, output checks, records, tables, draws.

A job (one sub-command of :mod:`alfi.cli`, run by one workflow rule) reads the validated config,
checks every output path before any work (:func:`check_outputs`), reads the exact reference
draws it scores against once, up front (:func:`reference_draws`), and writes its estimates,
metrics and samples tables (:func:`write_tables`), each row stamped with the fingerprint of an
:func:`evaluation_record` (the method's code, data, device and inputs: :mod:`alfi.provenance`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alfi.config import ConfigError, load_config, settings_for
from alfi.io import check_output, write_parquet

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = [
    "add_common_arguments",
    "setup",
    "check_outputs",
    "write_tables",
    "evaluation_record",
    "reference_draws",
    "digest_draws",
]

log = logging.getLogger("alfi")


def add_common_arguments(parser: argparse.ArgumentParser, simulator: bool = True) -> None:
    """``--config``, ``--simulator`` (unless ``simulator`` is false), ``--device`` and
    ``--threads``."""
    parser.add_argument("--config", required=True, type=Path, help="YAML config file")
    if simulator:
        parser.add_argument("--simulator", required=True, help="simulator name")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda (default: config)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def setup(args: argparse.Namespace) -> tuple[dict, dict | None, torch.device]:
    """The validated config, the simulator's resolved settings (``None`` without
    ``--simulator``) and the device; sets torch's CPU threads when ``--threads`` is given."""
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


def check_outputs(*paths: Path | None) -> None:
    """Check every output path before any work (see :func:`alfi.io.check_output`)."""
    for path in paths:
        if path is not None:
            check_output(path)


def write_tables(paths: Sequence[Path], simulator, trajectory, data, **keys) -> None:
    """The estimates, metrics and samples tables of one run, to ``paths`` in that order."""
    from alfi.results import trajectory_tables

    tables = trajectory_tables(simulator, trajectory, data, **keys)
    for path, frame in zip(paths, tables, strict=True):
        write_parquet(path, frame)
        log.info("wrote %s (%d rows)", path, len(frame))


def evaluation_record(kind: str, simulator, data, device, **inputs) -> dict:
    """The provenance record of one run of stage ``kind`` on a test meta-dataset: the
    simulator, the data's fingerprint, the device type, the stage's code digest and ``inputs``."""
    from alfi.provenance import code_digest, source_files

    return {
        "kind": kind,
        "simulator": simulator.name,
        "data": data.fingerprint,
        "device": device.type,
        "code": code_digest(source_files(simulator, kind)),
        **inputs,
    }


def reference_draws(path: Path | None) -> np.ndarray | None:
    """The exact draws of ``--reference`` (``None``: none given), read once, before any work, so
    that a bad file stops the command there; its C2ST and its digest use these."""
    from alfi.baselines import load_reference_draws

    return None if path is None else load_reference_draws(path)


def digest_draws(draws: np.ndarray | None) -> str | None:
    """The digest of exact reference draws (``None`` for none), for a run's record."""
    from alfi.provenance import array_digest

    return None if draws is None else array_digest(draws)
