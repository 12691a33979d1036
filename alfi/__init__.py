"""ALFI-bench: recurrent machines for likelihood-free inference, and a benchmark suite for them.

The names below are the Python API (README, "From Python"); each is imported on first use, so
``import alfi`` costs no torch. ``alfi.train_alfi`` is :func:`alfi.train.train` (the plain name
``alfi.train`` is its module).
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

#: Exported name to ``module`` (the same name there) or ``module:name``.
_EXPORTS = {
    # simulators
    "Simulator": "alfi.simulators",
    "available": "alfi.simulators",
    "get_simulator": "alfi.simulators",
    "register": "alfi.simulators",
    "check_simulator": "alfi.testing",
    # settings and data
    "settings": "alfi.config",
    "make_dataset": "alfi.data",
    "make_generator": "alfi.data",
    # the machine and its training
    "ALFI": "alfi.model",
    "ModelConfig": "alfi.model",
    "TrainResult": "alfi.train",
    "train_alfi": "alfi.train:train",
    "training_step": "alfi.meta_step",
    "Ensemble": "alfi.ensemble",
    "train_ensemble": "alfi.train_ensemble",
    "save_model": "alfi.checkpoints",
    "load_model": "alfi.checkpoints",
    # evaluation and results
    "Trajectory": "alfi.evaluate",
    "run_alfi": "alfi.evaluate_alfi",
    "run_mle": "alfi.evaluate",
    "trajectory_tables": "alfi.results",
    "read_results": "alfi.results",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy, so that `alfi aggregate` and friends do not pay for importing torch up front.
    if name in _EXPORTS:
        module, _, attribute = _EXPORTS[name].partition(":")
        return getattr(import_module(module), attribute or name)
    raise AttributeError(f"module 'alfi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
