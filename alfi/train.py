r"""Meta-training: Adam on :math:`\sum_t w_t \ell(\psi_{t+1}, \theta^*)` over a meta-dataset.

:func:`train` builds the model (weights from the run's seed), then takes one step
(:mod:`alfi.meta_step`: the unroll from fresh initial proposals, the variant's meta-loss, clipped
gradients, Adam) per meta-batch. Which problems each step sees and at what learning rate is
:mod:`alfi.schedule`'s; a run's record, checkpoints and model file are :mod:`alfi.checkpoints`'
(a checkpoint made from other inputs, or unreadable, is set aside and training starts afresh).
Training is resumable: a checkpoint holds weights, optimiser, the simulation generator's state
and the step, and everything else a step draws is a function of (seed, step), so a run
restarted from its checkpoint ends with the same weights as one that never stopped. The step's
functions are re-exported here, where a custom training loop looks for them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from alfi.checkpoints import (
    checkpoint_state,
    load_model,
    resumable_state,
    save_model,
    training_record,
)
from alfi.config import parse_variant, validate_settings
from alfi.data import probe_simulation
from alfi.divergence import NonFiniteLossError, TrainingDivergedError
from alfi.io import InputError, MetaDataset, check_dataset, save_torch
from alfi.meta_step import apply_gradients, batch_loss, stepper, training_step
from alfi.model import ALFI, ModelConfig
from alfi.model import squash as squash_kind
from alfi.provenance import digest
from alfi.schedule import (
    batch_indices,
    fresh_observations,
    fresh_problems,
    learning_rate,
    phase_steppers,
    prepare_optimiser,
    run_schedule,
    tail_length,
    tail_start,
    total_steps,
    training_batch,
    unroll_length,
)
from alfi.seeds import derive_seed
from alfi.simulators import Simulator

__all__ = [
    "NonFiniteLossError",
    "TrainResult",
    "TrainingDivergedError",
    "build_model",
    "initial_model",
    "training_generator",
    "training_record",
    "learning_rate",
    "fresh_observations",
    "fresh_problems",
    "training_batch",
    "unroll_length",
    "batch_loss",
    "apply_gradients",
    "training_step",
    "stepper",
    "train",
    "save_model",
    "load_model",
]

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: ALFI
    history: list[dict[str, float]] = field(default_factory=list)
    steps_done: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)


def observation_statistics(
    simulator: Simulator, x: torch.Tensor, squash: str = "none"
) -> tuple[torch.Tensor, ...]:
    """Mean and std of preprocessed (and, with ``squash="asinh"``, squashed) observations
    ``(N, M, X)`` per coordinate; a constant coordinate (std 0, like linear regression's column
    of ones) keeps std 1."""
    flat = squash_kind(simulator.preprocess(x.double()), squash).reshape(-1, x.shape[-1])
    mean, std = flat.mean(0), flat.std(0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return mean.float(), std.float()


def _tail_clip(cfg: dict[str, Any]) -> dict[str, Any]:
    """The model's clip past the horizon and the horizon itself, where ``tail_clip_scale`` is
    set (left out otherwise, so that the model's recorded configuration is unchanged)."""
    if cfg.get("tail_clip_scale") is None:
        return {}
    return {"tail_clip_scale": cfg["tail_clip_scale"], "horizon": cfg["steps"]}


def build_model(simulator: Simulator, settings: dict[str, Any], data: MetaDataset) -> ALFI:
    config = ModelConfig(
        theta_dim=simulator.theta_dim,
        observation_dim=simulator.observation_dim,
        clip=settings["train"]["clip"],
        clip_scale=settings["train"].get("clip_scale"),
        **_tail_clip(settings["train"]),
        **settings["model"],
    )
    model = ALFI(config)
    theta_mean, theta_std = simulator.prior_moments()
    statistics = observation_statistics(simulator, data.x, config.squash)
    model.set_normalisation(theta_mean, theta_std, *statistics)
    return model


#: Steps between two entries of a run's loss history.
HISTORY_EVERY = 50


def progress_bar(total: int, step: int, desc: str, progress: bool) -> tqdm:
    """A training run's progress bar, from ``step`` of ``total`` (hidden unless ``progress``)."""
    return tqdm(
        total=total, initial=step, disable=not progress, desc=desc, mininterval=2.0, unit="step"
    )


def initial_model(
    simulator: Simulator,
    data: MetaDataset,
    settings: dict[str, Any],
    *,
    variant: str,
    seed: int,
    device: torch.device | str,
) -> ALFI:
    """The untrained model of a run: weights drawn from the run's (seed, simulator, variant),
    not from the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init", simulator.name, variant))
        return build_model(simulator, settings, data).to(device)


def training_generator(
    simulator: Simulator, *, variant: str, seed: int, device: torch.device | str
) -> torch.Generator:
    """The run's generator of every proposal draw and simulation."""
    generator = torch.Generator(device=device)
    return generator.manual_seed(derive_seed(seed, "train", simulator.name, variant))


def check_training_inputs(
    simulator: Simulator, data: MetaDataset, settings: dict[str, Any]
) -> None:
    """Before any work: the settings against the schema (a misspelt or out-of-range key is
    named, not ignored or met as a ``ZeroDivisionError``), the data made by ``simulator``, one
    small batched simulation of it (:func:`alfi.data.probe_simulation`), a ``tail_from``
    that leaves the tail at least one of the run's steps, and a ``tail_ramp`` that ends by the
    last."""
    validate_settings(settings)
    check_dataset(data, simulator, f"the training meta-dataset given for {simulator.name!r}")
    if len(data) == 0:
        raise InputError(f"the {simulator.name} meta-dataset holds no problems; expected >= 1")
    probe_simulation(simulator, settings["train"]["n_sim"])
    cfg, total = settings["train"], total_steps(settings, len(data))[1]
    if cfg.get("tail_steps", 0) > 0 and tail_start(cfg, total) >= total:
        raise InputError(
            f"train.tail_from {cfg['tail_from']} leaves none of the {total} training steps to "
            f"the tail; expected at most {(total - 1) / total:.4g} (or tail_steps: 0)"
        )
    if cfg.get("tail_steps", 0) > 0 and tail_length(cfg, total - 1, total) < cfg["tail_steps"]:
        raise InputError(
            f"train.tail_ramp {cfg['tail_ramp']} from train.tail_from {cfg.get('tail_from', 0)} "
            f"ends past the last of the {total} training steps, the whole tail never trained; "
            "expected tail_from + tail_ramp <= 1 in whole steps"
        )


def train(
    simulator: Simulator,
    data: MetaDataset,
    settings: dict[str, Any],
    *,
    variant: str = "nll-exp",
    seed: int = 0,
    device: torch.device | str = "cpu",
    checkpoint: Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    cuda_graph: bool = False,
) -> TrainResult:
    """Meta-train ALFI; resume from ``checkpoint`` if it exists, and save to it periodically.

    ``settings`` holds the ``model`` and ``train`` sections of one simulator's resolved settings
    (:func:`alfi.config.settings`); ``variant`` is ``LOSS-WEIGHTING``; ``seed`` fixes the initial
    weights, the visiting order and every draw. Each step is one :func:`training_step` on the
    meta-batch the epoch order gives. ``stop_after`` ends the run after that many total steps
    (as if the job were killed right after a checkpoint); used to test resumption. On CUDA,
    ``cuda_graph`` replays each step's gradients from a CUDA graph (:func:`stepper`).
    """
    parse_variant(variant)
    check_training_inputs(simulator, data, settings)
    cfg = settings["train"]
    record = training_record(simulator, data, settings, variant, seed, device)
    provenance = {"fingerprint": digest(record), "record": record}
    model = initial_model(simulator, data, settings, variant=variant, seed=seed, device=device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    generator = training_generator(simulator, variant=variant, seed=seed, device=device)
    step, history = 0, []
    state = resumable_state(checkpoint, record, device)
    if state is not None:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        generator.set_state(state["generator"].cpu())
        step, history = state["step"], list(state["history"])
        log.info("resumed from %s at step %d", checkpoint, step)

    theta_raw, x_all = data.theta.to(device), data.x.to(device)
    name = f"{simulator.name} {variant}"
    per_epoch, total, last = run_schedule(settings, len(data), stop_after)
    step_function = phase_steppers(
        lambda phase: stepper(
            model,
            optimiser,
            simulator,
            cfg=phase,
            generator=generator,
            variant=variant,
            seed=seed,
            cuda_graph=cuda_graph,
        ),
        cfg,
        total,
    )
    bar = progress_bar(total, step, f"{simulator.name} {variant}", progress)
    start = time.perf_counter()
    while step < last:
        index = batch_indices(seed, step, per_epoch, len(data), cfg["meta_batch"]).to(device)
        prepare_optimiser(optimiser, cfg, step, total)
        theta, x_real = training_batch(
            simulator, cfg, theta_raw, x_all, index, seed=seed, step=step, name=name
        )
        loss = step_function(step)(x_real, model.standardise_theta(theta), step=step)
        step += 1
        bar.update(1)
        if step % HISTORY_EVERY == 0 or step == last:
            history.append(
                {"step": step, "loss": loss.item(), "seconds": time.perf_counter() - start}
            )
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
        if checkpoint is not None and (step % cfg["checkpoint_every"] == 0 or step == last):
            save_torch(
                checkpoint,
                checkpoint_state(
                    model.state_dict(),
                    model.config.to_dict(),
                    optimiser.state_dict(),
                    generator.get_state(),
                    step=step,
                    settings=settings,
                    variant=variant,
                    seed=seed,
                    history=history,
                    provenance=provenance,
                ),
            )
    bar.close()
    return TrainResult(model=model, history=history, steps_done=step, provenance=provenance)
