"""ALFI-bench: recurrent machines for likelihood-free inference, and a benchmark suite for them."""

from importlib import import_module
from typing import Any

__all__ = ["ALFI", "ModelConfig", "Simulator", "available", "get_simulator", "register"]
__version__ = "0.1.0"

_EXPORTS = {
    "ALFI": "alfi.model",
    "ModelConfig": "alfi.model",
    "Simulator": "alfi.simulators",
    "available": "alfi.simulators",
    "get_simulator": "alfi.simulators",
    "register": "alfi.simulators",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that `alfi aggregate` and friends do not pay for importing torch up front.
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'alfi' has no attribute {name!r}")
