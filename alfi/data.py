"""Meta-datasets of problems and the device/generator plumbing shared by every step."""

from __future__ import annotations

from typing import Any

import torch

from alfi.io import MetaDataset
from alfi.simulators import Simulator

__all__ = [
    "SimulatorError",
    "resolve_device",
    "make_generator",
    "check_simulation",
    "probe_simulation",
    "make_dataset",
]


class SimulatorError(RuntimeError):
    """A simulator returned observations of the wrong shape or non-finite values."""


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available; ``cuda`` without a GPU is an error, not a fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}; expected auto, cpu or cuda")
    return torch.device(device)


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def _check_shape(
    simulator: Simulator, theta: torch.Tensor, x: torch.Tensor, n: int
) -> tuple[int, ...]:
    expected = (*theta.shape[:-1], n, simulator.observation_dim)
    if not isinstance(x, torch.Tensor) or tuple(x.shape) != expected:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise SimulatorError(
            f"simulator {simulator.name!r} returned observations of shape {got} for theta of "
            f"shape {tuple(theta.shape)} and n={n}; expected {expected}"
        )
    return expected


def check_simulation(simulator: Simulator, theta: torch.Tensor, x: torch.Tensor, n: int) -> None:
    """Raise :class:`SimulatorError` unless ``x`` is finite with shape ``(*theta[:-1], n, X)``.

    The message names the simulator and, for non-finite values, the first offending ``theta``.
    """
    expected = _check_shape(simulator, theta, x, n)
    finite = torch.isfinite(x).flatten(len(expected) - 2).all(-1)  # (*,)
    if not bool(finite.all()):
        bad = (~finite).nonzero()[0]
        count = int((~finite).sum())
        raise SimulatorError(
            f"simulator {simulator.name!r} returned non-finite observations for {count} of "
            f"{finite.numel()} parameters, e.g. theta = {theta[tuple(bad)].tolist()}"
        )


def probe_simulation(simulator: Simulator, n: int, batch: tuple[int, ...] = (2, 3)) -> None:
    """One small simulation shaped as the unroll makes them (``(P, B, D)`` parameters from the
    prior, ``n`` observations each, CPU, a generator of its own), its shape checked as
    :func:`check_simulation` does: a simulator that mishandles batched parameters is named before
    any work, not met as a shape error deep in the network. (Values are left to the run, whose
    diagnosis of a non-finite loss names the step and the parameters.)"""
    generator = torch.Generator().manual_seed(0)
    theta = simulator.sample_prior(batch, generator)
    _check_shape(simulator, theta, simulator.simulate(theta, n, generator), n)


def make_dataset(
    simulator: Simulator,
    n_problems: int,
    n_real: int,
    seed: int,
    device: str = "cpu",
    provenance: dict[str, Any] | None = None,
) -> MetaDataset:
    r"""Draw ``n_problems`` :math:`\theta^* \sim` prior and ``n_real`` observations of each.

    The draws are made on ``device`` and returned on the CPU; the same seed on the same device
    gives the same dataset. The simulator's output is checked (:func:`check_simulation`).
    """
    generator = make_generator(seed, device)
    theta = simulator.sample_prior((n_problems,), generator)
    x = simulator.simulate(theta, n_real, generator)
    check_simulation(simulator, theta, x, n_real)
    return MetaDataset(simulator.name, theta.cpu(), x.float().cpu(), seed, provenance or {})
