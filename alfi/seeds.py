"""The seed tree: every random stream of a run derives from the config's one root seed.

A seed is a function of the root and a list of labels, ``s = ⌊H(root, labels) / 2⌋`` with ``H``
the first 8 bytes of the SHA-256 of the JSON list ``[root, *labels]`` (the labels as strings)
read as a little-endian integer: 63 bits, the same on every machine and Python version, and
unrelated for different labels. Each workflow stage names its streams here, so this module is
among every stage's code inputs (:data:`alfi.provenance.STAGE_MODULES`): editing how a seed is
derived reruns every job whose numbers it draws.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

__all__ = [
    "derive_seed",
    "dataset_seed",
    "run_seed",
    "evaluation_seed",
    "mle_seed",
    "baseline_seed",
    "amortised_training_seed",
]


def derive_seed(root: int, *keys: object) -> int:
    """A 63-bit seed derived from ``root`` and labels, stable across runs and machines."""
    digest = hashlib.sha256(json.dumps([root, *map(str, keys)]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def dataset_seed(root: int, simulator: str, split: str) -> int:
    """The meta-dataset ``split`` (``train`` or ``test``) of ``simulator``: its θ* and its real
    observations."""
    return derive_seed(root, "dataset", simulator, split)


def run_seed(root: int, seed: int) -> int:
    """The training of an ALFI model of the config's ``seeds`` entry ``seed`` (its
    initialisation, meta-batches and simulations; :func:`alfi.train.train`)."""
    return derive_seed(root, "run", seed)


def evaluation_seed(
    root: int, simulator: str, variant: str, seed: int, horizons: Sequence[int]
) -> int:
    """The test-time draws of one ALFI model (``variant``, ``seed``) unrolled to every
    ``T_test`` of ``horizons`` together."""
    return derive_seed(root, "evaluate", simulator, variant, seed, *horizons)


def mle_seed(root: int, simulator: str) -> int:
    """The draws the exact MLE's run records (its samples table)."""
    return derive_seed(root, "mle", simulator)


def baseline_seed(root: int, method: str, simulator: str, seed: int) -> int:
    """The test-time draws of a baseline ``method`` (its posterior draws, ABC's simulations)."""
    return derive_seed(root, "baseline", method, simulator, seed)


def amortised_training_seed(root: int, seed: int) -> int:
    """The training of an amortised baseline (regressor, NPE) of the ``seeds`` entry ``seed``."""
    return derive_seed(root, seed)
