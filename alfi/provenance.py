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
dumped as an abstract syntax tree without its docstrings: comments, docstrings and formatting are
no change of code, anything else the interpreter would see is. A simulator's code is its class's
source file plus the base class, so a plugin simulator is covered like a built-in one. The
workflow reads the same digests (:func:`file_digest`), one stamp per stage, to rerun exactly the
jobs whose code changed.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
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
    "stage_sources",
    "source_files",
    "file_digest",
    "code_digest",
    "code_stamp",
    "differences",
]

# ALFI's meta-training, alone or as an ensemble (also what `alfi bench` times)
_TRAINING = (
    *("alfi.seeds", "alfi.data", "alfi.proposal", "alfi.nn", "alfi.model", "alfi.losses"),
    *("alfi.schedule", "alfi.divergence", "alfi.checkpoints", "alfi.meta_step", "alfi.train"),
    *("alfi.ensemble", "alfi.ensemble_step", "alfi.train_ensemble", "alfi.cuda_graph"),
    "alfi.clipping",
)

#: The package modules whose code decides each step's output, besides the simulator's own.
#: Every stage draws from the seed tree (``alfi.seeds``); the stages that score draws by C2ST
#: against the exact posterior read ``alfi.calibration``; ALFI's evaluation counts its training
#: simulations with ``alfi.schedule`` and rebuilds the model with ``alfi.checkpoints``; NPE
#: pools with ``alfi.nn``'s set encoder. Each stage's command is among its
#: modules (``alfi.commands.*``; the baselines' is ``alfi.baselines``): it wires the stamped
#: settings and seeds to the package. The parser (``alfi.cli``, ``alfi.commands`` itself) and
#: what the commands share (``alfi.jobs``: set-up, output checks, records, writing the tables)
#: pass values on and write files, so that editing them reruns nothing.
#: ``tests/test_provenance.py`` runs every stage under a profiler and fails on a package
#: function run outside its stage's list.
STAGE_MODULES: dict[str, tuple[str, ...]] = {
    "dataset": ("alfi.seeds", "alfi.data", "alfi.commands.dataset"),
    "train": (*_TRAINING, "alfi.commands.train"),
    "evaluate": (
        *("alfi.seeds", "alfi.data", "alfi.proposal", "alfi.nn", "alfi.model", "alfi.evaluate"),
        *("alfi.results", "alfi.columns", "alfi.baselines", "alfi.calibration", "alfi.schedule"),
        *("alfi.checkpoints", "alfi.evaluate_alfi", "alfi.commands.evaluate"),
    ),
    "mle": (
        *("alfi.seeds", "alfi.data", "alfi.evaluate", "alfi.results", "alfi.columns"),
        "alfi.commands.mle",
    ),
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
        *("alfi.evaluate", "alfi.evaluate_alfi", "alfi.bench", "alfi.bench_harness"),
        *("alfi.bench_speed", "alfi.bench_evaluation"),
        "alfi.columns",  # the variant benched: columns.MAIN_VARIANT
    ),
    # the reports, from the aggregated tables (the histograms also read the simulators' code;
    # the calibration figure's levels are the constant `alfi.calibration.LEVELS`, which no
    # profiler sees)
    "figures": (
        *("alfi.report", "alfi.figures", "alfi.plotting", "alfi.histograms", "alfi.metrics"),
        *("alfi.comparison", "alfi.calibration", "alfi.columns"),
    ),
    "tables": (
        *("alfi.report", "alfi.tables", "alfi.metrics", "alfi.comparison", "alfi.contrasts"),
        "alfi.columns",
    ),
    # where the run's time went, from its jobs' benchmark files
    "timing": ("alfi.timing", "alfi.tables"),
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


def stage_sources(simulator: object | None = None, stage: str | None = None) -> dict[str, Path]:
    """Module name to source file of the code that matters for ``stage`` (a key of
    :data:`STAGE_MODULES`) and for ``simulator`` (its class's module and its base classes')."""
    sources: dict[str, Path] = {}
    if stage is not None:
        if stage not in STAGE_MODULES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(STAGE_MODULES)}")
        for module in STAGE_MODULES[stage]:
            sources[module] = _module_file(module)
    if simulator is not None:
        from alfi.simulators.base import Simulator

        for cls in type(simulator).__mro__:
            if cls is object or not issubclass(cls, Simulator):
                continue
            source = inspect.getsourcefile(cls)
            if source is not None:
                sources[cls.__module__] = Path(source).resolve()
    return sources


def source_files(simulator: object | None = None, stage: str | None = None) -> list[Path]:
    """The source files of :func:`stage_sources`, without duplicates, sorted."""
    return sorted(set(stage_sources(simulator, stage).values()))


def _module_file(name: str) -> Path:
    """The source file of module ``name``, found without running it (the workflow asks for every
    stage's files when it is parsed, and the reports' modules import seaborn)."""
    spec = importlib.util.find_spec(name)  # imports its parent packages only
    if spec is None or spec.origin is None:
        raise ValueError(f"no source file for module {name!r} (alfi.provenance.STAGE_MODULES)")
    return Path(spec.origin).resolve()


def _without_docstrings(tree: ast.Module) -> ast.Module:
    """``tree`` less the docstring of its module, classes and functions."""
    for node in ast.walk(tree):
        documented = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, documented) and ast.get_docstring(node, clean=False) is not None:
            node.body = node.body[1:]
    return tree


def _normal_form(node: Any) -> str:
    """A syntax tree as text, every empty field (``None``, ``[]``) left out: the same code
    gives the same text under Python versions that add fields (3.12's ``type_params``) or
    leave empty ones out of :func:`ast.dump` (3.13)."""
    if isinstance(node, ast.AST):
        fields = (
            f"{name}={_normal_form(value)}"
            for name, value in ast.iter_fields(node)
            if value is not None and not (isinstance(value, list) and not value)
        )
        return f"{type(node).__name__}({', '.join(fields)})"
    if isinstance(node, list):
        return f"[{', '.join(_normal_form(item) for item in node)}]"
    return repr(node)


@lru_cache(maxsize=256)
def _file_digest(path: Path, mtime_ns: int, size: int) -> str:
    text = path.read_text(encoding="utf-8")
    try:
        normal = _normal_form(_without_docstrings(ast.parse(text, filename=str(path))))
    except SyntaxError:  # not Python we can parse: fall back on the bytes themselves
        normal = text
    return hashlib.sha256(normal.encode()).hexdigest()


def file_digest(path: Path) -> str:
    """The SHA-256 (hex) of the code in the Python file ``path``: its syntax tree without
    docstrings, so that comments, docstrings and formatting leave it unchanged (a file that does
    not parse: its bytes)."""
    stat = path.stat()
    return _file_digest(path, stat.st_mtime_ns, stat.st_size)


def _combined(digests: Iterable[tuple[Path, str]]) -> str:
    return digest([[path.name, hex_digest] for path, hex_digest in digests])


def code_digest(files: Iterable[Path]) -> str:
    """A digest of the code in ``files`` (their names and :func:`file_digest`)."""
    return _combined((path, file_digest(path)) for path in files)


def code_stamp(sources: Mapping[str, Path]) -> dict[str, Any]:
    """What the workflow stamps a stage's code with, from :func:`stage_sources`: ``code``, the
    :func:`code_digest` of the files (the ``code`` of the records the stage's jobs write), and
    each module's :func:`file_digest` (its first 16 hex digits), so that a changed stamp names
    the module that changed. Module names, not paths: a moved checkout stamps the same."""
    files = sorted(set(sources.values()))
    digests = {path: file_digest(path) for path in files}
    return {
        "code": _combined(digests.items()),
        "modules": {name: digests[path][:16] for name, path in sorted(sources.items())},
    }


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
