r"""One meta-training step: the unrolled meta-loss of a meta-batch, its gradients, Adam's step.

For a meta-batch of ``P`` problems with raw real observations ``x_real`` ``(P, M_r, X)`` and
standardised parameters :math:`\theta^*` ``(P, D)``, a step draws :math:`\psi_1` ``(P, 2D)`` from
the prior (Appendix A), unrolls ``T + tail_steps`` updates of ALFI (:meth:`alfi.model.ALFI.unroll`:
``n_theta`` proposal draws, ``n_sim`` simulations each, per update), scores the trajectory
:math:`\psi_{1..T'+1}` with the variant's meta-loss :math:`\sum_t w_t \ell(\psi_{t+1}, \theta^*)`
(:mod:`alfi.losses`), clips the gradients' global L2 norm (:mod:`alfi.clipping`, safe from a
float32 overflow of the norm) and steps the optimiser. A loss that is not finite is explained
by :mod:`alfi.divergence`. On CUDA, :func:`stepper` replays the loss and
its gradients from a CUDA graph (:mod:`alfi.cuda_graph`). :func:`alfi.train.train` loops over
these steps; an ensemble's step is :mod:`alfi.ensemble_step`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

from alfi import proposal
from alfi.clipping import clip_grad_norm_
from alfi.config import parse_variant
from alfi.cuda_graph import training_stepper
from alfi.divergence import diagnose_non_finite, diverged_error, proposal_diverged
from alfi.losses import meta_loss
from alfi.model import ALFI
from alfi.schedule import unroll_sizes
from alfi.simulators import Simulator

__all__ = ["variant_loss", "batch_loss", "apply_gradients", "training_step", "stepper"]


def variant_loss(
    trajectory: torch.Tensor, theta: torch.Tensor, variant: str, cfg: dict[str, Any]
) -> torch.Tensor:
    """:func:`alfi.losses.meta_loss` of ``variant`` (``LOSS-WEIGHTING``) under the training
    settings ``cfg`` (``beta``, ``tail_steps``, ``tail_weight``)."""
    loss_kind, weighting = parse_variant(variant)
    tail, tail_weight = cfg.get("tail_steps", 0), cfg.get("tail_weight", 1.0)
    return meta_loss(trajectory, theta, loss_kind, weighting, cfg["beta"], tail, tail_weight)


def _initial_proposals(
    x_real: torch.Tensor, simulator: Simulator, cfg: dict[str, Any], generator: torch.Generator
) -> torch.Tensor:
    r""":math:`\psi_1` ``(P, 2D)`` for the ``P`` problems of ``x_real`` (one draw)."""
    return proposal.initial(
        (x_real.shape[0],), simulator.theta_dim, generator, cfg["initial_log_scale"]
    )


def _unrolled_loss(
    model: ALFI,
    simulator: Simulator,
    x_real: torch.Tensor,
    psi: torch.Tensor,
    theta: torch.Tensor,
    cfg: dict[str, Any],
    generator: torch.Generator,
    variant: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The unroll from ``psi`` and its meta-loss, unchecked: ``(loss, trajectory)``."""
    trajectory = model.unroll(
        simulator,
        x_real,
        psi,
        **unroll_sizes(cfg),
        generator=generator,
    )
    return variant_loss(trajectory, theta, variant, cfg), trajectory


def batch_loss(
    model: ALFI,
    simulator: Simulator,
    x_real: torch.Tensor,
    theta: torch.Tensor,
    *,
    cfg: dict[str, Any],
    generator: torch.Generator,
    variant: str = "nll-exp",
    seed: int = 0,
    step: int = 0,
) -> torch.Tensor:
    r"""The meta-loss of one meta-batch (the forward half of :func:`training_step`).

    Draws :math:`\psi_1` from the prior for each of the ``P`` problems (one draw of
    ``generator``), unrolls ``steps + tail_steps`` updates on the raw real data ``x_real``
    ``(P, M_r, X)`` (``generator`` again, for the proposal draws and simulations) and returns
    the scalar :math:`\sum_t w_t \ell(\psi_{t+1}, \theta^*)` against ``theta`` ``(P, D)``, the
    standardised :math:`\theta^*` (:meth:`ALFI.standardise_theta`). ``cfg`` holds the training
    settings (``steps``, ``tail_steps``, ``n_theta``, ``n_sim``, ``beta``,
    ``initial_log_scale``); ``variant`` is ``LOSS-WEIGHTING``.

    A loss that is not finite raises :class:`~alfi.divergence.NonFiniteLossError` saying why
    (the simulator, a diverged proposal or the optimisation); ``seed`` and ``step`` name the
    step in that message and seed the diagnostic replays, which draw nothing from
    ``generator``.
    """
    parse_variant(variant)  # a bad variant is named before any simulation
    psi = _initial_proposals(x_real, simulator, cfg, generator)
    try:
        loss, trajectory = _unrolled_loss(
            model, simulator, x_real, psi, theta, cfg, generator, variant
        )
    except RuntimeError as exc:
        if not proposal_diverged(model, simulator, x_real, psi, cfg, seed, step):
            raise
        raise diverged_error(step, f"{simulator.name}, {variant}", exc) from None
    _check_loss(
        model, simulator, loss, trajectory[..., : simulator.theta_dim], cfg, variant, seed, step
    )
    return loss


def _check_loss(
    model: ALFI,
    simulator: Simulator,
    loss: torch.Tensor,
    means: torch.Tensor,
    cfg: dict[str, Any],
    variant: str,
    seed: int,
    step: int,
) -> None:
    """Raise :func:`alfi.divergence.diagnose_non_finite`'s error if ``loss`` is not finite;
    ``means`` ``(T + 1, P, D)`` are the trajectory's standardised proposal means."""
    if not torch.isfinite(loss):
        raw = model.raw_theta(means)
        raise diagnose_non_finite(simulator, raw, cfg["n_sim"], seed, step, variant)


def apply_gradients(
    model: ALFI, optimiser: torch.optim.Optimizer, loss: torch.Tensor, grad_clip: float | None
) -> None:
    """The backward half of :func:`training_step`: gradients of ``loss``, their global L2 norm
    clipped to ``grad_clip`` (``None``: not clipped), one optimiser step."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        clip_grad_norm_(model.parameters(), grad_clip)
    optimiser.step()


def training_step(
    model: ALFI,
    optimiser: torch.optim.Optimizer,
    simulator: Simulator,
    x_real: torch.Tensor,
    theta: torch.Tensor,
    *,
    cfg: dict[str, Any],
    generator: torch.Generator,
    variant: str = "nll-exp",
    seed: int = 0,
    step: int = 0,
) -> torch.Tensor:
    """One meta-training step on a meta-batch: :func:`batch_loss` then :func:`apply_gradients`
    (``cfg["grad_clip"]``). Returns the loss (a detached scalar tensor: reading it with
    ``.item()`` is the caller's choice, since it synchronises a GPU).

    ``x_real`` ``(P, M_r, X)`` raw real observations, ``theta`` ``(P, D)`` their standardised
    parameters; the learning rate is the optimiser's (:func:`alfi.train.train` sets it per step
    with :func:`alfi.schedule.learning_rate`). :func:`alfi.train.train` loops over this; so does
    ``alfi bench``.
    """
    loss = batch_loss(
        model,
        simulator,
        x_real,
        theta,
        cfg=cfg,
        generator=generator,
        variant=variant,
        seed=seed,
        step=step,
    )
    apply_gradients(model, optimiser, loss, cfg["grad_clip"])
    return loss.detach()


def stepper(
    model: ALFI,
    optimiser: torch.optim.Optimizer,
    simulator: Simulator,
    *,
    cfg: dict[str, Any],
    generator: torch.Generator,
    variant: str = "nll-exp",
    seed: int = 0,
    cuda_graph: bool = False,
) -> Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]:
    """:func:`training_step` as a function of ``(x_real, theta, step=)``. On CUDA with
    ``cuda_graph``, the loss and its clipped gradients are replayed from a CUDA graph
    (:func:`alfi.cuda_graph.training_stepper`), the loss is checked as :func:`batch_loss`
    checks it (a non-finite loss raises before the optimiser steps), and Adam steps eagerly:
    the eager step's draws and operations, one launch instead of a thousand."""

    def check(loss: torch.Tensor, means: torch.Tensor, *, step: int) -> None:
        _check_loss(model, simulator, loss, means, cfg, variant, seed, step)

    return training_stepper(
        functools.partial(
            training_step,
            *(model, optimiser, simulator),
            cfg=cfg,
            generator=generator,
            variant=variant,
            seed=seed,
        ),
        functools.partial(_gradients, model, optimiser, simulator, cfg, generator, variant),
        [generator],
        check,
        optimiser,
        enabled=cuda_graph,
    )


def _gradients(
    model: ALFI,
    optimiser: torch.optim.Optimizer,
    simulator: Simulator,
    cfg: dict[str, Any],
    generator: torch.Generator,
    variant: str,
    x_real: torch.Tensor,
    theta: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The capturable half of a step: gradients zeroed in place, the loss, its clipped
    gradients; returns the detached loss and the trajectory's means ``(T + 1, P, D)``."""
    optimiser.zero_grad(set_to_none=False)
    psi = _initial_proposals(x_real, simulator, cfg, generator)
    loss, trajectory = _unrolled_loss(model, simulator, x_real, psi, theta, cfg, generator, variant)
    loss.backward()
    if cfg["grad_clip"] is not None:
        clip_grad_norm_(model.parameters(), cfg["grad_clip"])
    return loss.detach(), trajectory.detach()[..., : simulator.theta_dim]
