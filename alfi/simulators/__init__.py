"""Benchmark simulators (Appendix B of the paper) and the registry that names them."""

from __future__ import annotations

from alfi.simulators.base import Simulator

__all__ = ["Simulator", "register", "get_simulator", "available"]

_REGISTRY: dict[str, type[Simulator]] = {}


def register(cls: type[Simulator]) -> type[Simulator]:
    """Class decorator making a simulator available by its ``name``."""
    if not cls.name:
        raise ValueError(f"simulator class {cls.__name__} has no 'name' attribute")
    if len(cls.prior_low) != len(cls.parameter_names) or len(cls.prior_high) != len(
        cls.parameter_names
    ):
        raise ValueError(
            f"simulator {cls.name!r}: prior bounds and parameter_names differ in length"
        )
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names of all registered simulators."""
    return sorted(_REGISTRY)


def get_simulator(name: str) -> Simulator:
    """Instantiate the simulator registered as ``name``."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ValueError(
            f"unknown simulator {name!r}; expected one of {', '.join(available())}"
        ) from None


# The built-in problems register themselves on import; they need ``register`` defined above.
from alfi.simulators import linear_regression, multivariate, poisson, weinberg  # noqa: E402, F401
