"""The workflow's own sub-commands: ``alfi dataset``, ``train``, ``evaluate`` and ``mle``.

Each lives in the module of its stage (:mod:`alfi.commands.dataset`, :mod:`~alfi.commands.train`,
:mod:`~alfi.commands.evaluate`, :mod:`~alfi.commands.mle`), among that stage's code inputs
(:data:`alfi.provenance.STAGE_MODULES`): how a command wires the settings, seeds and files to
the package decides its numbers, so an edit of it reruns that stage's jobs and no other's. Each
draws or reads what its rule names, checks its outputs before any work and writes them
atomically (the baselines' commands: :mod:`alfi.baselines`; the reports': :mod:`alfi.report`;
what they share: :mod:`alfi.jobs`). This module only adds their parsers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from alfi.commands.dataset import cmd_dataset
from alfi.commands.evaluate import cmd_evaluate
from alfi.commands.mle import cmd_mle
from alfi.commands.train import cmd_train
from alfi.jobs import add_common_arguments

__all__ = ["add_commands", "cmd_dataset", "cmd_train", "cmd_evaluate", "cmd_mle"]


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
