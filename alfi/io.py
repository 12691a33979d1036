"""Files: atomic writes, meta-datasets, checkpoints and Parquet tables.

Meta-dataset (``.npz``, NumPy): ``theta`` ``(N, D)`` float32 in raw units, ``x`` ``(N, M_r, X)``
float32 real observations, ``simulator`` (its name), ``seed`` (the one it was drawn from) and
``provenance`` (JSON: the record of what it was drawn from, see :mod:`alfi.provenance`). Its
fingerprint is the digest of its content, so a model records exactly the data it saw.

Every file is written to a temporary file beside its target and renamed onto it: a reader never
sees half a file, a killed writer leaves at most a ``.NAME.*.tmp`` that the next write of the same
target removes. Files get the permissions the umask allows (not ``mkstemp``'s private 0600), so
colleagues sharing a results folder can read them. Output paths are checked before any work
(:func:`check_output`), so a bad path costs nothing.

Checkpoints and models (``.pt``) hold only tensors and plain Python values, and are read with
``torch.load(weights_only=True)``: no arbitrary pickle is ever executed.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from alfi.provenance import array_digest

if TYPE_CHECKING:  # torch and pandas are imported where used: writing settings needs neither
    import pandas as pd
    import torch

    from alfi.simulators import Simulator

__all__ = [
    "InputError",
    "atomic_path",
    "check_output",
    "write_yaml",
    "MetaDataset",
    "check_dataset",
    "read_npz",
    "save_dataset",
    "load_dataset",
    "save_torch",
    "load_torch",
    "write_parquet",
    "read_parquet",
]


class InputError(ValueError):
    """An input file is missing, malformed or inconsistent with what was asked."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_output(path: str | Path) -> Path:
    """Check, before any work, that ``path`` can be written as a file; create its folder.

    Raises :class:`InputError` naming the path when it is a folder, lies under a file, or its
    folder cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"output {path} is a folder; expected a file path")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise InputError(f"output {path} lies under {parent}, which is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(f"cannot write output {path}: {exc.strerror or exc}") from None
    return path


def _remove_stale_temporaries(path: Path) -> None:
    """Temporary files of ``path`` left by a writer that was killed before its rename."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            stale.unlink()
        except OSError:
            pass


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = check_output(path)
    _remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_yaml(path: str | Path, value: Any, *, unless_same: bool = False) -> bool:
    """Write ``value`` as YAML (keys in their given order) atomically; with ``unless_same``,
    leave a file that already holds that text alone. Returns whether it wrote."""
    text = yaml.safe_dump(value, sort_keys=False)
    path = Path(path)
    if unless_same and path.is_file() and path.read_text() == text:
        return False
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return True


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
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return self.theta.shape[0]

    def head(self, n: int) -> MetaDataset:
        """The first ``n`` problems (all of them if there are fewer)."""
        return MetaDataset(self.simulator, self.theta[:n], self.x[:n], self.seed, self.provenance)

    @cached_property
    def fingerprint(self) -> str:
        """Digest of the content (name, theta, x): what a model trained on it depends on."""
        name = np.frombuffer(self.simulator.encode(), dtype=np.uint8)
        return array_digest(name, self.theta.cpu().numpy(), self.x.cpu().numpy())


def _check_match(where: str, name: str, theta_dim: int, x_dim: int, simulator: Simulator) -> None:
    expected = (simulator.theta_dim, simulator.observation_dim)
    if name != simulator.name or (theta_dim, x_dim) != expected:
        raise InputError(
            f"{where}: holds {name!r} data with D={theta_dim}, X={x_dim}; "
            f"expected {simulator.name!r} with D={expected[0]}, X={expected[1]}"
        )


def _check_layout(where: str, theta_shape: tuple[int, ...], x_shape: tuple[int, ...]) -> None:
    if len(theta_shape) != 2 or len(x_shape) != 3 or theta_shape[0] != x_shape[0]:
        raise InputError(
            f"{where}: expected theta (N, D) and x (N, M, X), got {tuple(theta_shape)} and "
            f"{tuple(x_shape)}"
        )


def check_dataset(data: MetaDataset, simulator: Simulator, role: str = "the meta-dataset") -> None:
    """Raise :class:`InputError` unless ``data`` was made by ``simulator`` (its name and its
    ``D``, ``X``): data of another simulator would otherwise train or broadcast silently."""
    _check_layout(role, data.theta.shape, data.x.shape)
    _check_match(role, data.simulator, data.theta.shape[1], data.x.shape[2], simulator)


def save_dataset(path: str | Path, data: MetaDataset) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(
                handle,
                theta=data.theta.cpu().numpy(),
                x=data.x.cpu().numpy(),
                simulator=np.array(data.simulator),
                seed=np.array(data.seed, dtype=np.int64),
                provenance=np.array(json.dumps(data.provenance, sort_keys=True)),
            )

    _atomic(write, path)


def read_npz(
    path: str | Path, kind: str, expected: str, keys: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` archive that must hold ``keys`` (others it holds come too);
    :class:`InputError` naming the file, and ``expected`` (what it should be), when it is
    missing, not an archive, unreadable or lacks a key. ``kind`` names it when missing."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{kind} not found: {path}; expected {expected}")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path} is not {expected}: not a .npz archive (truncated or other data)")
    try:
        with np.load(path, allow_pickle=False) as stored:
            missing = [key for key in keys if key not in stored.files]
            if missing:
                raise InputError(
                    f"{path} is not {expected}: it lacks {', '.join(missing)} (holds "
                    f"{', '.join(stored.files) or 'nothing'})"
                )
            return {key: stored[key] for key in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path} is not {expected}: {exc}") from None


def load_dataset(path: str | Path, simulator: Simulator | None = None) -> MetaDataset:
    """Read and check a meta-dataset; ``simulator`` (if given) must match its shapes and name."""
    path = Path(path)
    expected = "a meta-dataset (.npz with theta, x, simulator, seed)"
    f = read_npz(path, "meta-dataset", expected, ("theta", "x", "simulator", "seed"))
    theta, x = f["theta"], f["x"]
    try:
        name, seed = str(f["simulator"]), int(f["seed"])
        provenance = json.loads(str(f["provenance"])) if "provenance" in f else {}
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path} is not {expected}: {exc}") from None
    _check_layout(str(path), theta.shape, x.shape)
    if theta.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(
            f"{path}: holds {theta.shape[0]} problems of {x.shape[1]} observations; "
            "expected at least one of each"
        )
    if not (np.isfinite(theta).all() and np.isfinite(x).all()):
        raise InputError(f"{path}: theta and x must be finite")
    if simulator is not None:
        _check_match(str(path), name, theta.shape[1], x.shape[2], simulator)
    import torch

    return MetaDataset(name, torch.from_numpy(theta), torch.from_numpy(x), seed, provenance)


def save_torch(path: str | Path, obj: dict[str, Any]) -> None:
    import torch

    _atomic(lambda tmp: torch.save(obj, tmp), path)


def load_torch(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InputError(
            f"{path} is not a readable ALFI model or checkpoint (truncated, or not written by "
            f"alfi): {first}"
        ) from None


def write_parquet(path: str | Path, frame: pd.DataFrame) -> None:
    _atomic(lambda tmp: frame.to_parquet(tmp, index=False), path)


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    import pandas as pd

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
