"""Files: atomic writes, meta-datasets, checkpoints and Parquet tables.

Meta-dataset (``.npz``, NumPy): ``theta`` ``(N, D)`` float32 in raw units, ``x`` ``(N, M_r, X)``
float32 real observations, ``simulator`` (its name), ``seed`` (the one it was drawn from).

Checkpoints and models (``.pt``) hold only tensors and plain Python values, and are read with
``torch.load(weights_only=True)``: no arbitrary pickle is ever executed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from alfi.simulators import Simulator

__all__ = [
    "InputError",
    "atomic_path",
    "MetaDataset",
    "save_dataset",
    "load_dataset",
    "save_torch",
    "load_torch",
    "write_parquet",
    "read_parquet",
]


class InputError(ValueError):
    """An input file is missing, malformed or inconsistent with what was asked."""


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _atomic(write: Callable[[Path], None], path: str | Path) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


@dataclass(frozen=True)
class MetaDataset:
    """Problems ``(theta*, X^r)``: ``theta`` ``(N, D)``, ``x`` ``(N, M_r, X)``."""

    simulator: str
    theta: torch.Tensor
    x: torch.Tensor
    seed: int

    def __len__(self) -> int:
        return self.theta.shape[0]


def save_dataset(path: str | Path, data: MetaDataset) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                theta=data.theta.cpu().numpy(),
                x=data.x.cpu().numpy(),
                simulator=np.array(data.simulator),
                seed=np.array(data.seed, dtype=np.int64),
            )

    _atomic(write, path)


def load_dataset(path: str | Path, simulator: Simulator | None = None) -> MetaDataset:
    """Read and check a meta-dataset; ``simulator`` (if given) must match its shapes and name."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"meta-dataset not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            theta, x = f["theta"], f["x"]
            name, seed = str(f["simulator"]), int(f["seed"])
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(
            f"{path} is not a meta-dataset (.npz with theta, x, simulator, seed): {exc}"
        ) from None
    if theta.ndim != 2 or x.ndim != 3 or theta.shape[0] != x.shape[0]:
        raise InputError(
            f"{path}: expected theta (N, D) and x (N, M, X), got {theta.shape} and {x.shape}"
        )
    if not (np.isfinite(theta).all() and np.isfinite(x).all()):
        raise InputError(f"{path}: theta and x must be finite")
    if simulator is not None:
        expected = (simulator.theta_dim, simulator.observation_dim)
        if name != simulator.name or (theta.shape[1], x.shape[2]) != expected:
            raise InputError(
                f"{path}: holds {name!r} data with D={theta.shape[1]}, X={x.shape[2]}; "
                f"expected {simulator.name!r} with D={expected[0]}, X={expected[1]}"
            )
    return MetaDataset(name, torch.from_numpy(theta), torch.from_numpy(x), seed)


def save_torch(path: str | Path, obj: dict[str, Any]) -> None:
    _atomic(lambda tmp: torch.save(obj, tmp), path)


def load_torch(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise InputError(f"{path} is not a readable ALFI checkpoint: {exc}") from None


def write_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    _atomic(lambda tmp: frame.to_parquet(tmp, index=False), path)


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"results table not found: {path}")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow's errors vary by failure
        raise InputError(f"{path} is not a Parquet table: {exc}") from None
    missing = sorted(set(columns or ()) - set(frame.columns))
    if missing:
        raise InputError(f"{path}: missing columns {missing}")
    return frame
