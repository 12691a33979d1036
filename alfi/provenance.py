r"""Provenance: a fingerprint of exactly what an artefact was made from.

Every artefact that a later step may reuse (a meta-dataset, a training checkpoint, a trained
model, a row of a results table) records a *record* of its inputs, a JSON object such as

.. code-block:: json

    {"kind": "train", "simulator": "poisson", "variant": "nll-exp", "seed": 123,
     "settings": {"model": {...}, "train": {...}}, "data": "9f0c…", "device": "cpu",
     "code": "41be…"}

and its *fingerprint*, the first 16 hex digits of the SHA-256 of that record in canonical JSON
(keys sorted). Two artefacts with the same fingerprint were made from the same settings, data,
seed, device type and code; a checkpoint is resumed only when its fingerprint is the one the
current run would write.

The code part is a digest of the source of the modules that matter for the step, parsed and
dumped as an abstract syntax tree: comments and formatting are no change of code, anything the
interpreter would see is. A simulator's code is its class's source file plus the base class, so
a plugin simulator is covered like a built-in one.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "STAGE_MODULES",
    "digest",
    "array_digest",
    "source_files",
    "code_digest",
    "differences",
]

# ALFI's meta-training, alone or as an ensemble (also what `alfi bench` times)
_TRAINING = (
    *("alfi.seeds", "alfi.data", "alfi.proposal", "alfi.nn", "alfi.model", "alfi.losses"),
    *("alfi.schedule", "alfi.divergence", "alfi.checkpoints", "alfi.meta_step", "alfi.train"),
    *("alfi.ensemble", "alfi.ensemble_step", "alfi.train_ensemble", "alfi.cuda_graph"),
)

#: The package modules whose code decides each step's output, besides the simulator's own.
#: Every stage draws from the seed tree (``alfi.seeds``); the stages that score draws by C2ST
#: against the exact posterior read ``alfi.calibration``; ALFI's evaluation counts its training
#: simulations with ``alfi.schedule`` and rebuilds the model with ``alfi.checkpoints``; NPE
#: pools by mean and max with ``alfi.nn``'s set encoder. The command line (``alfi.cli``,
#: ``alfi.commands``, ``alfi.jobs``) parses arguments, passes the stamped settings on and writes
#: files, so that editing it reruns nothing; logic that decides a number belongs in a stage's
#: modules, where an edit reruns what it touches.
#: ``tests/test_provenance.py`` runs every stage under a profiler and fails on a package
#: function run outside its stage's list.
STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "dataset": ("alfi.seeds", "alfi.data"),
    "train": _TRAINING,
    "evaluate": (
        *("alfi.seeds", "alfi.data", "alfi.proposal", "alfi.nn", "alfi.model", "alfi.evaluate"),
        *("alfi.results", "alfi.columns", "alfi.baselines", "alfi.calibration", "alfi.schedule"),
        "alfi.checkpoints",
    ),
    "mle": ("alfi.seeds", "alfi.data", "alfi.evaluate", "alfi.results", "alfi.columns"),
    "posterior": (
        *("alfi.seeds", "alfi.data", "alfi.evaluate", "alfi.reference", "alfi.results"),
        *("alfi.columns", "alfi.baselines"),
    ),
    "prior_mean": (
        *("alfi.seeds", "alfi.data", "alfi.evaluate", "alfi.results", "alfi.columns"),
        *("alfi.baselines", "alfi.calibration"),
    ),
    "regressor": (
        *("alfi.seeds", "alfi.data", "alfi.nn", "alfi.model", "alfi.train", "alfi.evaluate"),
        *("alfi.results", "alfi.columns", "alfi.baselines", "alfi.regressor"),
    ),
    "abc_smc": (
        *("alfi.seeds", "alfi.data", "alfi.model", "alfi.evaluate", "alfi.results"),
        *("alfi.columns", "alfi.baselines", "alfi.abc", "alfi.calibration"),
    ),
    "npe": (
        *("alfi.seeds", "alfi.data", "alfi.nn", "alfi.model", "alfi.train", "alfi.evaluate"),
        *("alfi.results", "alfi.columns", "alfi.baselines", "alfi.npe", "alfi.calibration"),
    ),
    # `alfi bench`: training steps, ensembles, evaluation and time to accuracy (configs/paper.yaml)
    "bench": (
        *_TRAINING,
        *("alfi.evaluate", "alfi.bench", "alfi.bench_harness", "alfi.bench_speed"),
        *("alfi.bench_evaluation", "alfi.columns"),  # the variant benched: columns.MAIN_VARIANT
    ),
    # the reports, from the aggregated tables (the histograms also read the simulators' code;
    # the calibration figure's levels are the constant `alfi.calibration.LEVELS`, which no
    # profiler sees)
    "figures": (
        *("alfi.report", "alfi.figures", "alfi.plotting", "alfi.histograms", "alfi.metrics"),
        *("alfi.comparison", "alfi.calibration", "alfi.columns"),
    ),
    "tables": ("alfi.report", "alfi.tables", "alfi.metrics", "alfi.comparison", "alfi.columns"),
}


def digest(record: Any) -> str:
    """16 hex digits of the SHA-256 of ``record`` as canonical JSON (keys sorted)."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def array_digest(*arrays: np.ndarray) -> str:
    """16 hex digits of the SHA-256 of the arrays' dtypes, shapes and bytes, in order."""
    hasher = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        hasher.update(f"{array.dtype.str}{array.shape}".encode())
        hasher.update(array.data)
    return hasher.hexdigest()[:16]


def source_files(simulator: object | None = None, stage: str | None = None) -> list[Path]:
    """The source files whose code matters for ``stage`` (a key of :data:`STAGE_MODULES`) and
    for ``simulator`` (its class's file and the base class's), without duplicates, sorted."""
    files: set[Path] = set()
    if stage is not None:
        if stage not in STAGE_MODULES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(STAGE_MODULES)}")
        for module in STAGE_MODULES[stage]:
            files.add(Path(inspect.getfile(importlib.import_module(module))).resolve())
    if simulator is not None:
        from alfi.simulators.base import Simulator

        for cls in type(simulator).__mro__:
            if cls is object or not issubclass(cls, Simulator):
                continue
            source = inspect.getsourcefile(cls)
            if source is not None:
                files.add(Path(source).resolve())
    return sorted(files)


@lru_cache(maxsize=64)
def _file_digest(path: Path, mtime_ns: int, size: int) -> str:
    text = path.read_text(encoding="utf-8")
    try:
        normal = ast.dump(ast.parse(text, filename=str(path)))
    except SyntaxError:  # not Python we can parse: fall back on the bytes themselves
        normal = text
    return hashlib.sha256(normal.encode()).hexdigest()


def code_digest(files: Iterable[Path]) -> str:
    """A digest of the code in ``files``, insensitive to comments and formatting."""
    parts = []
    for path in files:
        stat = path.stat()
        parts.append([path.name, _file_digest(path, stat.st_mtime_ns, stat.st_size)])
    return digest(parts)


def differences(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 4) -> str:
    """What differs between two records, as ``key.path: old -> new`` items (at most ``limit``)."""
    items: list[str] = []

    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in sorted(set(a) | set(b), key=str):
                walk(a.get(key, "<absent>"), b.get(key, "<absent>"), f"{path}.{key}".lstrip("."))
        elif a != b:
            items.append(f"{path or '<record>'}: {a!r} -> {b!r}")

    walk(old, new, "")
    shown = "; ".join(items[:limit])
    return shown + (f"; and {len(items) - limit} more" if len(items) > limit else "")
