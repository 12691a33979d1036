"""Provenance and persistence of a training run: its record, its checkpoints, its model file.

A run's *record* (:func:`training_record`) is what its weights depend on: simulator, variant,
seed, model and training settings, the data's content digest, device type and the training
code (:mod:`alfi.provenance`). A checkpoint holds weights, optimiser, the generator's state, the
step and the record's fingerprint; it is resumed only when that fingerprint is the one the run
would write itself (:func:`resumable_state`), and set aside otherwise. A model file
(:func:`save_model`) holds the trained weights and what they were trained with.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from alfi.io import InputError, MetaDataset, load_torch, save_torch
from alfi.model import ALFI, HEAD_INIT, ModelConfig
from alfi.provenance import code_digest, differences, digest, source_files
from alfi.simulators import Simulator

__all__ = [
    "LATER_OPTIONS",
    "training_record",
    "resumable_state",
    "checkpoint_state",
    "MODEL_KEYS",
    "save_model",
    "load_model",
]

log = logging.getLogger(__name__)


#: Settings added later, with the default that reproduces the behaviour from before them.
LATER_OPTIONS = {
    "model": {
        "pooling": "mean",
        "bound_mean": False,
        "squash": "none",
        "score_gradient": "full",
        "head_init": HEAD_INIT,
        "mean_step": "absolute",
    },
    "train": {
        "fresh_real": False,
        "fresh_problems": False,
        "lr_schedule": "constant",
        "warmup": 0,
        "tail_steps": 0,
        "tail_weight": 1.0,
        "tail_from": 0,
        "tail_ramp": 0,
        "tail_restart": False,
        "clip_scale": None,
        "tail_clip_scale": None,
    },
}


def _recorded_options(section: dict[str, Any], name: str) -> dict[str, Any]:
    later = LATER_OPTIONS[name]
    return {k: v for k, v in section.items() if not (k in later and v == later[k])}


def training_record(
    simulator: Simulator,
    data: MetaDataset,
    settings: dict[str, Any],
    variant: str,
    seed: int,
    device: torch.device | str,
    group: Sequence[tuple[str, int]] = (),
) -> dict[str, Any]:
    """What a trained model depends on: its provenance record (see :mod:`alfi.provenance`).

    How often checkpoints are written is left out: it does not change the weights. Options added
    after a record format was fixed (:data:`LATER_OPTIONS`) are recorded only when they differ
    from their default, which is today's behaviour: a checkpoint made before they existed keeps
    its fingerprint, and any run that turns one on gets another. ``group``, the ``(variant,
    seed)`` members of the ensemble it trains in (:mod:`alfi.train_ensemble`), is recorded when
    it has more than one: batched kernels round differently from a model's own.
    """
    train = _recorded_options(settings["train"], "train")
    train.pop("checkpoint_every", None)
    together = {"ensemble": [[v, int(s)] for v, s in group]} if len(group) > 1 else {}
    return {
        **together,
        "kind": "train",
        "simulator": simulator.name,
        "variant": variant,
        "seed": seed,
        "settings": {"model": _recorded_options(settings["model"], "model"), "train": train},
        "data": data.fingerprint,
        "device": torch.device(device).type,
        "code": code_digest(source_files(simulator, "train")),
    }


def _set_aside(path: Path, reason: str) -> None:
    aside = path.with_name(f"{path.name}.set-aside-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, aside)
    log.warning("set aside checkpoint %s as %s: %s; training starts afresh", path, aside, reason)


def resumable_state(checkpoint: Path | None, record: dict, device: torch.device) -> dict | None:
    """The checkpoint's state if it was made from ``record``'s inputs; else set it aside."""
    if checkpoint is None or not Path(checkpoint).is_file():
        return None
    path = Path(checkpoint)
    try:
        state = load_torch(path, map_location=device)
    except InputError as exc:
        _set_aside(path, f"unreadable ({exc})")
        return None
    provenance = state.get("provenance") if isinstance(state, dict) else None
    if not provenance:
        _set_aside(path, "it records no provenance (written by an older alfi)")
        return None
    if not {"optimiser", "generator", "step"} <= state.keys():
        # A trained model records the same provenance; setting it aside would move the user's
        # model, resuming from it would fail half-way: stop before any work.
        raise InputError(
            f"{path} is a trained model (save_model, `alfi train --out`), not a training "
            "checkpoint; expected a checkpoint path of its own (a new file is fine)"
        )
    if provenance.get("fingerprint") != digest(record):
        change = differences(provenance.get("record", {}), record)
        _set_aside(path, f"it was made from other inputs ({change})")
        return None
    return state


def checkpoint_state(
    model_state: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    optimiser_state: dict[str, Any],
    generator_state: torch.Tensor,
    *,
    step: int,
    settings: dict[str, Any],
    variant: str,
    seed: int,
    history: list[dict[str, float]],
    provenance: dict[str, Any],
) -> dict:
    """What a checkpoint holds: enough to continue the run exactly where it stopped."""
    return {
        "provenance": provenance,
        "model": model_state,
        "model_config": model_config,
        "optimiser": optimiser_state,
        "generator": generator_state,
        "step": step,
        "settings": settings,
        "variant": variant,
        "seed": seed,
        "history": history,
    }


#: What a model file holds besides the loss history and provenance (:func:`save_model`).
MODEL_KEYS = ("model", "model_config", "simulator", "settings", "variant", "seed")


def save_model(
    path: Path,
    model: ALFI,
    simulator: Simulator,
    settings: dict,
    *,
    variant: str,
    seed: int,
    history: list[dict[str, float]] | None = None,
    provenance: dict[str, Any] | None = None,
) -> None:
    """The trained model: weights, sizes, normalisation (in the weights), what it was trained
    with (``settings``, ``variant``, ``seed``, the loss ``history``) and its provenance; read
    back by :func:`load_model`."""
    save_torch(
        path,
        {
            "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "model_config": model.config.to_dict(),
            "simulator": simulator.name,
            "settings": settings,
            "variant": variant,
            "seed": seed,
            "history": history or [],
            "provenance": provenance or {},
        },
    )


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[ALFI, dict[str, Any]]:
    """A model written by :func:`save_model` (in eval mode, on ``device``) and everything saved
    with it (``simulator``, ``settings``, ``variant``, ``seed``, ``history``, ``provenance``)."""
    state = load_torch(path, map_location=device)
    if isinstance(state, dict) and "optimiser" in state and "simulator" not in state:
        raise InputError(
            f"{path} is a training checkpoint, not a model; expected the file `alfi train "
            "--out` (save_model) writes when training ends"
        )
    missing = [key for key in MODEL_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise InputError(
            f"{path} is not a model written by save_model (`alfi train --out`): it lacks "
            f"{', '.join(missing)}"
        )
    try:
        model = ALFI(ModelConfig(**state["model_config"])).to(device)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{path} does not hold weights of this ALFI version: {first}") from None
    model.eval()
    return model, state
