r"""Meta-training a group of models of one simulator together, as one batched ensemble.

The members ``(variant, seed)`` share the simulator, the meta-dataset and every model and
training setting; they differ in their seed (initial weights, visiting order, random stream) and
their ``LOSS-WEIGHTING``. Each step does for every member what :func:`alfi.train.train` does for
one model — its meta-batch, its :math:`\psi_1`, its unroll, its loss, its gradient clipped to its
own norm, its Adam update — but the networks of all members run as one
:class:`~alfi.ensemble.Ensemble`, and Adam updates the stacked weights in one call (Adam is
elementwise: stacking changes no number). That step is :mod:`alfi.ensemble_step`'s; here, the
loop over steps, the members' resumption and their checkpoints.

Each member keeps its own checkpoint and model file, in the format of a model trained alone.
A member draws exactly what it would draw alone (its own generator), and its weights follow the
same updates up to the rounding of the batched kernels (tests/test_ensemble.py); as rounding
grows over a long run, its provenance record names the group
(:func:`alfi.train.training_record`), and its checkpoint is resumed by the same group only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from alfi.checkpoints import checkpoint_state, resumable_state, training_record
from alfi.config import parse_variant
from alfi.ensemble import Ensemble
from alfi.ensemble_step import ensemble_stepper
from alfi.io import InputError, MetaDataset, save_torch
from alfi.provenance import digest
from alfi.schedule import (
    batch_indices,
    phase_steppers,
    prepare_optimiser,
    run_schedule,
    training_batch,
)
from alfi.simulators import Simulator
from alfi.train import (
    HISTORY_EVERY,
    TrainResult,
    check_training_inputs,
    initial_model,
    progress_bar,
    train,
    training_generator,
)

__all__ = ["train_ensemble"]

log = logging.getLogger(__name__)


def train_ensemble(
    simulator: Simulator,
    data: MetaDataset,
    settings: dict[str, Any],
    members: Sequence[tuple[str, int]],
    *,
    device: torch.device | str = "cpu",
    checkpoints: Sequence[Path | None] | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    cuda_graph: bool = False,
) -> list[TrainResult]:
    """Train the models ``members`` (``(variant, seed)`` pairs) together; one
    :class:`~alfi.train.TrainResult` per member, in order.

    ``checkpoints`` (one path or ``None`` per member) are resumed and written as
    :func:`alfi.train.train` does, and resumed only all together: if the members' checkpoints
    stand at different steps (the job was killed between two writes, or one was removed), the
    group starts afresh. A group of one is :func:`alfi.train.train`. On CUDA, ``cuda_graph``
    replays each step's gradients from one CUDA graph for the group
    (:func:`alfi.ensemble_step.ensemble_stepper`).
    """
    members = [(str(variant), int(seed)) for variant, seed in members]
    if not members:
        raise InputError("an ensemble needs at least one (variant, seed) member")
    if len(set(members)) != len(members):
        raise InputError(f"an ensemble's members must differ; got {members}")
    checkpoints = list(checkpoints) if checkpoints is not None else [None] * len(members)
    if len(checkpoints) != len(members):
        raise InputError(
            f"expected {len(members)} checkpoints, one per member, got {len(checkpoints)}"
        )
    for variant, _ in members:
        parse_variant(variant)
    check_training_inputs(simulator, data, settings)
    if len(members) == 1:
        (variant, seed), (checkpoint,) = members[0], checkpoints
        return [
            train(
                simulator,
                data,
                settings,
                variant=variant,
                seed=seed,
                device=device,
                checkpoint=checkpoint,
                stop_after=stop_after,
                progress=progress,
                cuda_graph=cuda_graph,
            )
        ]

    records = [
        training_record(simulator, data, settings, v, s, device, group=members) for v, s in members
    ]
    states = [
        resumable_state(c, r, torch.device(device))
        for c, r in zip(checkpoints, records, strict=True)
    ]
    reached = {None if state is None else state["step"] for state in states}
    if len(reached) > 1:  # killed between two members' writes, or one removed: start afresh
        log.warning(
            "the checkpoints of group %s stand at different steps (%s); the group starts afresh",
            members,
            ", ".join("none" if s is None else str(s["step"]) for s in states),
        )
        states = [None] * len(members)
    return _train_together(
        simulator,
        data,
        settings,
        members,
        records,
        states,
        device,
        checkpoints,
        stop_after,
        progress,
        cuda_graph,
    )


def _member_optimiser_state(state: dict[str, Any], g: int) -> dict[str, Any]:
    """Member ``g``'s slice of the stacked Adam ``state_dict``, as a one-model Adam's."""
    sliced = {
        i: {k: v if k == "step" else v[g].clone() for k, v in entry.items()}
        for i, entry in state["state"].items()
    }
    return {"state": sliced, "param_groups": state["param_groups"]}


def _stacked_optimiser_state(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The inverse of :func:`_member_optimiser_state` over all members."""
    first = states[0]["state"]
    stacked = {
        i: {
            k: v if k == "step" else torch.stack([s["state"][i][k] for s in states])
            for k, v in entry.items()
        }
        for i, entry in first.items()
    }
    return {"state": stacked, "param_groups": states[0]["param_groups"]}


def _train_together(
    simulator: Simulator,
    data: MetaDataset,
    settings: dict[str, Any],
    members: list[tuple[str, int]],
    records: list[dict[str, Any]],
    states: list[dict | None],
    device: torch.device | str,
    checkpoints: list[Path | None],
    stop_after: int | None,
    progress: bool,
    cuda_graph: bool,
) -> list[TrainResult]:
    cfg = settings["train"]
    provenances = [{"fingerprint": digest(r), "record": r} for r in records]
    models = [
        initial_model(simulator, data, settings, variant=v, seed=s, device=device)
        for v, s in members
    ]
    generators = [
        training_generator(simulator, variant=v, seed=s, device=device) for v, s in members
    ]
    step, histories = 0, [[] for _ in members]
    if states[0] is not None:
        for model, generator, state in zip(models, generators, states, strict=True):
            model.load_state_dict(state["model"])
            generator.set_state(state["generator"].cpu())
        step, histories = states[0]["step"], [list(s["history"]) for s in states]
        log.info("resumed %d members at step %d", len(members), step)
    ensemble = Ensemble(models).to(device)
    optimiser = torch.optim.Adam(ensemble.parameters(), lr=cfg["lr"])
    if states[0] is not None:
        optimiser.load_state_dict(_stacked_optimiser_state([s["optimiser"] for s in states]))

    theta_raw, x_all = data.theta.to(device), data.x.to(device)
    per_epoch, total, last = run_schedule(settings, len(data), stop_after)
    step_function = phase_steppers(
        lambda phase: ensemble_stepper(
            ensemble,
            optimiser,
            simulator,
            cfg=phase,
            generators=generators,
            members=members,
            cuda_graph=cuda_graph,
        ),
        cfg,
        total,
    )
    bar = progress_bar(total, step, f"{simulator.name} x{len(members)}", progress)
    start = time.perf_counter()
    while step < last:
        index = torch.stack(
            [batch_indices(s, step, per_epoch, len(data), cfg["meta_batch"]) for _, s in members]
        ).to(device)  # (G, P)
        prepare_optimiser(optimiser, cfg, step, total)
        batches = [
            training_batch(
                simulator, cfg, theta_raw, x_all, i, seed=s, step=step, name=f"{simulator.name} {v}"
            )
            for i, (v, s) in zip(index, members, strict=True)
        ]
        theta = torch.stack([t for t, _ in batches])
        x_real = torch.stack([x for _, x in batches])
        # standardised by the prior's moments: the same for every member
        losses = step_function(step)(x_real, models[0].standardise_theta(theta), step=step)
        step += 1
        bar.update(1)
        if step % HISTORY_EVERY == 0 or step == last:
            seconds = time.perf_counter() - start
            for history, loss in zip(histories, losses.tolist(), strict=True):
                history.append({"step": step, "loss": loss, "seconds": seconds})
        if step % cfg["checkpoint_every"] == 0 or step == last:
            optimiser_state = optimiser.state_dict()
            for g, (variant, seed) in enumerate(members):
                if checkpoints[g] is None:
                    continue
                save_torch(
                    checkpoints[g],
                    checkpoint_state(
                        ensemble.member_state(g),
                        ensemble.config.to_dict(),
                        _member_optimiser_state(optimiser_state, g),
                        generators[g].get_state(),
                        step=step,
                        settings=settings,
                        variant=variant,
                        seed=seed,
                        history=histories[g],
                        provenance=provenances[g],
                    ),
                )
    bar.close()
    return [
        TrainResult(
            model=ensemble.member(g),
            history=histories[g],
            steps_done=step,
            provenance=provenances[g],
        )
        for g in range(len(members))
    ]
