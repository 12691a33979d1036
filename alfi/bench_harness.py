"""The benchmarks' harness: the settings they run at and the instruments they read.

Every part of ``alfi bench`` (:mod:`alfi.bench`) runs at the paper's hyper-parameters,
:func:`paper_settings` (``configs/paper.yaml``), and measures wall-clock time between device
synchronisations (:func:`sync`, :func:`measure`, :class:`TimedSimulator` for the time spent
simulating) and peak memory (:func:`peak_mib`): CUDA's peak allocation, or on CPU the process's
peak resident set (reset before each measurement through ``/proc/self/clear_refs`` where Linux
allows, :func:`reset_peak`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from alfi.columns import MAIN_VARIANT
from alfi.config import config_path, load_config, settings_for
from alfi.simulators import Simulator

__all__ = [
    "paper_config",
    "paper_settings",
    "sync",
    "reset_peak",
    "peak_mib",
    "TimedSimulator",
    "measure",
]


@functools.cache
def paper_config() -> dict[str, Any]:
    """``configs/paper.yaml``, validated: the simulators and Appendix B settings benchmarked."""
    return load_config(config_path("paper"))


def paper_settings(name: str) -> dict[str, Any]:
    """The settings of ``name`` at the paper's hyper-parameters (T, meta-batch, B, M, clip, lr,
    500 real observations, K = 500), resolved from ``configs/paper.yaml`` as the workflow
    resolves them; then the benchmark's own: one epoch (``bench_accuracy`` sets the length it
    needs), no checkpoints, no histogram samples."""
    settings = settings_for(paper_config(), name, MAIN_VARIANT)  # a fresh copy
    settings["train"] |= {"epochs": 1, "checkpoint_every": 10**9}
    settings["evaluate"]["histograms"] = 0
    return settings


def sync(device: torch.device) -> None:
    """Wait for ``device``'s queued work (CUDA); a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    """Start a new peak-memory measurement on ``device``."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:  # not Linux, or not allowed: the peak is then the process's so far
            pass


def peak_mib(device: torch.device) -> float:
    """Peak memory in MiB since :func:`reset_peak`: CUDA's allocation or the resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TimedSimulator:
    """Wraps a simulator and accumulates the wall time spent in ``simulate``."""

    def __init__(self, simulator: Simulator, device: torch.device) -> None:
        self.inner, self.device, self.seconds = simulator, device, 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def simulate(self, theta: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        sync(self.device)
        start = time.perf_counter()
        out = self.inner.simulate(theta, n, generator)
        sync(self.device)
        self.seconds += time.perf_counter() - start
        return out


@contextmanager
def measure(device: torch.device) -> Iterator[dict[str, float]]:
    """Time the block between synchronisations; the yielded dict gets ``seconds`` and
    ``peak_mib`` (the peak reset at entry) when the block ends."""
    reset_peak(device)
    sync(device)
    box = {"start": time.perf_counter()}
    yield box
    sync(device)
    box["seconds"] = time.perf_counter() - box["start"]
    box["peak_mib"] = peak_mib(device)
