"""Shared fixtures and options.

``--device cuda`` runs the device-aware tests (those taking the ``device`` fixture) on the GPU
instead of the CPU: ``python -m pytest --device cuda -m "not slow"``. ``-m "not slow"`` leaves
out the workflow and SLURM runs: the quick loop while editing the package.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="where the device-aware tests run (default cpu)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--device") == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--device cuda was given but torch sees no CUDA device")


@pytest.fixture(autouse=True)
def _deterministic_threads():
    torch.set_num_threads(2)
    yield


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    """The device of the device-aware tests (``--device``)."""
    return torch.device(request.config.getoption("--device"))


@pytest.fixture
def generator() -> Callable[[int], torch.Generator]:
    """A factory of seeded CPU generators: ``generator(seed)``."""
    return lambda seed=0: torch.Generator().manual_seed(seed)
