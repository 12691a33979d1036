r"""The training schedule: how many steps a run takes, what each one trains on, at what rate.

A run of ``epochs`` over ``N`` stored problems in meta-batches of ``P`` takes
``round(epochs * ceil(N / P))`` optimiser steps. Epoch ``e`` visits the problems in an order
drawn from (seed, e) alone, and step ``s`` takes its ``P`` problems from that order at
``s mod ceil(N / P)``; with ``train.fresh_real`` their real observations are drawn anew for the
step, with ``train.fresh_problems`` the step draws ``P`` new problems instead, each from a
generator seeded by (seed, simulator, variant, step). Every quantity here is a function of the
step number, so a run resumed from a checkpoint trains on exactly what an uninterrupted run
would: no checkpoint carries any of it. With ``tail_from``, the steps before
``ceil(tail_from · S)`` unroll the horizon ``T`` alone and the rest ``T + tail_steps``
(:func:`step_settings`), or with ``tail_ramp`` a tail that grows one update at a time from
there (:func:`tail_length`); with ``tail_restart`` Adam's moment estimates start afresh at that
step (:func:`restarts_optimiser`). The learning rate of step ``s`` of ``S``:
``lr · min(1, (s + 1) / ceil(warmup · S))`` during the warm-up, then ``lr`` or, with the
cosine schedule, ``lr · (1 + cos(π (s − warmup · S) / (S − warmup · S))) / 2``.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from alfi.seeds import derive_seed
from alfi.simulators import Simulator

log = logging.getLogger(__name__)

__all__ = [
    "learning_rate",
    "unroll_length",
    "unroll_sizes",
    "tail_start",
    "tail_length",
    "step_settings",
    "unrolled_updates",
    "restarts_optimiser",
    "prepare_optimiser",
    "phase_steppers",
    "total_steps",
    "run_schedule",
    "epoch_order",
    "batch_indices",
    "step_generator",
    "fresh_observations",
    "fresh_problems",
    "training_batch",
]


def learning_rate(cfg: dict[str, Any], step: int, total: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) of ``total``: ``lr`` after a linear
    warm-up over the first ``warmup`` fraction of the steps, then constant or, with
    ``lr_schedule: cosine``, a half cosine down to 0 at ``total``. A function of the step alone,
    so a resumed run uses the same rates."""
    schedule, warmup = cfg.get("lr_schedule", "constant"), cfg.get("warmup", 0.0)
    factor = 1.0
    warm_steps = warmup * total
    if warm_steps > 0 and step < warm_steps:
        factor = (step + 1) / math.ceil(warm_steps)
    elif schedule == "cosine":
        progress = (step - warm_steps) / max(1.0, total - warm_steps)
        factor = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return cfg["lr"] * factor


def unroll_length(cfg: dict[str, Any]) -> int:
    """Updates unrolled per training step: the horizon ``steps`` plus ``tail_steps`` past it."""
    return cfg["steps"] + cfg.get("tail_steps", 0)


def unroll_sizes(cfg: dict[str, Any]) -> dict[str, int]:
    """The sizes of a training step's unroll (:meth:`alfi.model.ALFI.unroll`'s ``steps``,
    ``n_theta``, ``n_sim``) under the training settings ``cfg``."""
    return {"steps": unroll_length(cfg), "n_theta": cfg["n_theta"], "n_sim": cfg["n_sim"]}


def tail_start(cfg: dict[str, Any], total: int) -> int:
    """The first of ``total`` steps whose unroll runs past the horizon:
    ``ceil(tail_from · total)`` (``tail_from``: default 0, every step), the product rounded to
    six decimals first so that a decimal fraction such as 0.07 of 100 steps gives 7, not 8."""
    return math.ceil(round(cfg.get("tail_from", 0.0) * total, 6))


def tail_length(cfg: dict[str, Any], step: int, total: int) -> int:
    """Updates past the horizon that step ``step`` of ``total`` unrolls: none before
    :func:`tail_start`, then ``tail_steps`` or, with ``tail_ramp`` (a fraction ``r`` of the
    steps), one more every ``R / tail_steps`` steps, ``R = ceil(r · total)``:
    ``min(tail_steps, ceil(tail_steps · (step − start + 1) / R))``."""
    tail, start = cfg.get("tail_steps", 0), tail_start(cfg, total)
    if tail == 0 or step < start:
        return 0
    ramp = math.ceil(round(cfg.get("tail_ramp", 0.0) * total, 6))
    if ramp == 0:
        return tail
    return min(tail, math.ceil(round(tail * (step - start + 1) / ramp, 6)))


def step_settings(cfg: dict[str, Any], step: int, total: int) -> dict[str, Any]:
    """The training settings of step ``step`` of ``total``: ``cfg`` itself where the step
    unrolls the whole tail, else ``cfg`` with ``tail_steps`` its :func:`tail_length` (0 before
    ``tail_from``, growing over ``tail_ramp``): a step of ``T + k`` updates costs about
    ``(T + k) / (T + tail_steps)`` of a whole one. A function of the step alone, like the
    learning rate."""
    length = tail_length(cfg, step, total)
    return cfg if length == cfg.get("tail_steps", 0) else {**cfg, "tail_steps": length}


def unrolled_updates(cfg: dict[str, Any], steps: int, total: int) -> int:
    """Updates unrolled by the first ``steps`` of ``total`` training steps, each its
    :func:`step_settings`' :func:`unroll_length` (the training-simulation count and the
    workflow's job priorities)."""
    return steps * cfg["steps"] + sum(tail_length(cfg, s, total) for s in range(steps))


def restarts_optimiser(cfg: dict[str, Any], step: int, total: int) -> bool:
    """Whether Adam's moment estimates start afresh before step ``step`` of ``total``: with
    ``tail_restart``, at the :func:`tail_start` of a late tail (``tail_from`` > 0) only.

    Why one might: the first unrolls past the horizon can meet proposals far narrower than the
    truth, the tail's terms then dominate the loss by orders of magnitude, and Adam's second
    moments, averaged over the horizon's gradients, make its first steps in the new direction
    many times the learning rate. Fresh moments make them ``lr``-sized. Measured on Poisson it
    rescued one seed of three, and changed nothing on the simulators that take a late tail
    (docs/studies/accuracy.md): off in the default configuration."""
    start = tail_start(cfg, total)
    return bool(cfg.get("tail_restart")) and cfg.get("tail_steps", 0) > 0 and 0 < start == step


def prepare_optimiser(
    optimiser: torch.optim.Optimizer, cfg: dict[str, Any], step: int, total: int
) -> None:
    """Ready ``optimiser`` for step ``step`` of ``total``: its moments cleared where
    :func:`restarts_optimiser` says so, every group's rate :func:`learning_rate`'s."""
    if restarts_optimiser(cfg, step, total):
        optimiser.state.clear()
        log.info("the tail joins at step %d: Adam's moments start afresh", step)
    for group in optimiser.param_groups:
        group["lr"] = learning_rate(cfg, step, total)


Step = TypeVar("Step")


def phase_steppers(
    make: Callable[[dict[str, Any]], Step], cfg: dict[str, Any], total: int
) -> Callable[[int], Step]:
    """The step function of each training step: ``make`` of :func:`step_settings`, built once
    per unroll length (a CUDA graph is captured for each). Lengths only grow with the step, so
    the last one built is the only one kept: an earlier graph's memory is released."""
    built: dict[int, Step] = {}

    def for_step(step: int) -> Step:
        settings = step_settings(cfg, step, total)
        length = unroll_length(settings)
        if length not in built:
            built.clear()
            built[length] = make(settings)
        return built[length]

    return for_step


def step_generator(
    kind: str, seed: int, name: str, step: int, device: torch.device
) -> torch.Generator:
    """A generator of its own for what training step ``step`` draws afresh (``kind``), seeded
    by (seed, kind, ``name``: simulator and variant, step): no checkpoint needs to carry it."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, kind, name, step))
    return generator


def fresh_observations(
    simulator: Simulator, theta: torch.Tensor, n: int, seed: int, step: int, name: str
) -> torch.Tensor:
    """New real observations ``(P, n, X)`` of the raw ``theta`` ``(P, D)`` for training step
    ``step``: drawn from a generator seeded by (seed, simulator, variant, step), so they differ
    between visits and are the same on a resumed run."""
    generator = step_generator("real", seed, name, step, theta.device)
    return simulator.simulate(theta, n, generator).float()


def fresh_problems(
    simulator: Simulator, size: int, n: int, seed: int, step: int, name: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``size`` new problems for training step ``step``: raw :math:`\theta^* \sim p(\theta)`
    ``(size, D)`` and ``n`` real observations of each ``(size, n, X)``, drawn on ``device`` from
    a generator seeded by (seed, simulator, variant, step), so no two steps share a problem and a
    resumed run draws the same ones."""
    generator = step_generator("problems", seed, name, step, device)
    theta = simulator.sample_prior((size,), generator)
    return theta, simulator.simulate(theta, n, generator).float()


def training_batch(
    simulator: Simulator,
    cfg: dict[str, Any],
    theta_raw: torch.Tensor,
    x_all: torch.Tensor,
    index: torch.Tensor,
    *,
    seed: int,
    step: int,
    name: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw ``(theta*, x_real)`` of training step ``step``: the stored problems ``index`` ``(P,)``
    of ``theta_raw`` ``(N, D)`` and ``x_all`` ``(N, M_r, X)``; with ``cfg["fresh_real"]`` their
    observations drawn anew (:func:`fresh_observations`); with ``cfg["fresh_problems"]`` ``P``
    new problems (:func:`fresh_problems`). ``name`` (simulator and variant) keys the draws."""
    if cfg.get("fresh_problems", False):
        return fresh_problems(
            simulator, index.numel(), x_all.shape[1], seed, step, name, x_all.device
        )
    theta = theta_raw[index]
    if cfg.get("fresh_real", False):
        return theta, fresh_observations(simulator, theta, x_all.shape[1], seed, step, name)
    return theta, x_all[index]


def total_steps(settings: dict[str, Any], n_problems: int) -> tuple[int, int]:
    """Steps per epoch over ``n_problems`` in meta-batches, and steps in all (at least one)."""
    per_epoch = math.ceil(n_problems / settings["train"]["meta_batch"])
    return per_epoch, max(1, round(settings["train"]["epochs"] * per_epoch))


def run_schedule(
    settings: dict[str, Any], n_problems: int, stop_after: int | None
) -> tuple[int, int, int]:
    """Steps per epoch, steps in all, and the step a run ends at (``stop_after``, if sooner)."""
    per_epoch, total = total_steps(settings, n_problems)
    return per_epoch, total, total if stop_after is None else min(total, stop_after)


@functools.lru_cache(maxsize=2)
def epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The visiting order of epoch ``epoch``: a function of (seed, epoch), drawn once per epoch."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, epoch)))


def batch_indices(seed: int, step: int, per_epoch: int, n: int, batch: int) -> torch.Tensor:
    """The stored problems ``(batch,)`` (fewer at an epoch's end) of step ``step``."""
    epoch, position = divmod(step, per_epoch)
    return epoch_order(seed, epoch, n)[position * batch : (position + 1) * batch]
