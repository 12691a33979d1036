"""Meta-datasets of problems and the device/generator plumbing shared by every step."""

from __future__ import annotations

import torch

from alfi.io import MetaDataset
from alfi.simulators import Simulator

__all__ = ["resolve_device", "make_generator", "make_dataset"]


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


def make_dataset(
    simulator: Simulator, n_problems: int, n_real: int, seed: int, device: str = "cpu"
) -> MetaDataset:
    r"""Draw ``n_problems`` :math:`\theta^* \sim` prior and ``n_real`` observations of each.

    The draws are made on ``device`` and returned on the CPU; the same seed on the same device
    gives the same dataset.
    """
    generator = make_generator(seed, device)
    theta = simulator.sample_prior((n_problems,), generator)
    x = simulator.simulate(theta, n_real, generator)
    return MetaDataset(simulator.name, theta.cpu(), x.float().cpu(), seed)
