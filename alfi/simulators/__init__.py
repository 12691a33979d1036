"""Benchmark simulators (Appendix B of the paper) and the registry that names them."""

from __future__ import annotations

from alfi.simulators.base import Simulator

__all__ = ["Simulator", "register", "get_simulator", "available"]

_REGISTRY: dict[str, type[Simulator]] = {}


def register(cls: type[Simulator] | None = None, *, replace: bool = False):
    """Class decorator making a simulator available by its ``name``.

    A name already taken by another class is an error, so that a plugin cannot silently shadow a
    built-in simulator (or another plugin's). To replace one on purpose, say so:
    ``@register(replace=True)``. Registering the same class again (a module re-imported) is
    harmless.
    """
    if cls is None:
        return lambda c: register(c, replace=replace)
    if not cls.name:
        raise ValueError(f"simulator class {cls.__name__} has no 'name' attribute")
    if len(cls.prior_low) != len(cls.parameter_names) or len(cls.prior_high) != len(
        cls.parameter_names
    ):
        raise ValueError(
            f"simulator {cls.name!r}: prior bounds and parameter_names differ in length"
        )
    empty = [
        f"{name} [{low}, {high}]"
        for name, low, high in zip(cls.parameter_names, cls.prior_low, cls.prior_high, strict=True)
        if not low < high
    ]
    if empty:
        raise ValueError(
            f"simulator {cls.name!r}: prior box {', '.join(empty)} is empty; expected "
            "prior_low < prior_high for every parameter"
        )
    taken = _REGISTRY.get(cls.name)
    if taken is not None and not replace and _qualified(taken) != _qualified(cls):
        raise ValueError(
            f"simulator name {cls.name!r} of {_qualified(cls)} is already taken by "
            f"{_qualified(taken)}; choose another name, or replace it on purpose with "
            "@register(replace=True)"
        )
    _REGISTRY[cls.name] = cls
    return cls


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


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
