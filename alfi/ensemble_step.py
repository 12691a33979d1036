r"""One meta-training step of a batched ensemble: every member's loss, gradients and update at once.

For ``G`` members ``(variant, seed)`` of one simulator, raw real data ``x_real``
``(G, P, M_r, X)`` and standardised :math:`\theta^*` ``(G, P, D)``, a step draws each member's
:math:`\psi_1` ``(G, P, 2D)`` from its own generator, unrolls all members as one
:class:`~alfi.ensemble.Ensemble` (``(T' + 1, G, P, 2D)``), takes each member's meta-loss under its
own variant (:func:`alfi.meta_step.variant_loss`), clips each member's gradient to its own norm
and steps Adam on the stacked weights (elementwise: stacking changes no number). What a single
model's step does (:mod:`alfi.meta_step`), member by member; the loop over steps is
:mod:`alfi.train_ensemble`'s.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch

from alfi import proposal
from alfi.clipping import clip_member_grad_norms_
from alfi.cuda_graph import training_stepper
from alfi.divergence import diagnose_non_finite, diverged_error, proposal_diverged
from alfi.ensemble import Ensemble
from alfi.meta_step import variant_loss
from alfi.schedule import unroll_sizes
from alfi.simulators import Simulator

__all__ = ["ensemble_step", "ensemble_stepper"]


def ensemble_step(
    ensemble: Ensemble,
    optimiser: torch.optim.Optimizer,
    simulator: Simulator,
    x_real: torch.Tensor,
    theta: torch.Tensor,
    *,
    cfg: dict[str, Any],
    generators: Sequence[torch.Generator],
    members: Sequence[tuple[str, int]],
    step: int = 0,
) -> torch.Tensor:
    r""":func:`alfi.meta_step.training_step` for every member at once: raw real data ``x_real``
    ``(G, P, M_r, X)``, standardised ``theta`` ``(G, P, D)``, one generator and one
    ``(variant, seed)`` per member. Each member draws its :math:`\psi_1` and unrolls from its
    own generator; its loss is clipped to ``cfg["grad_clip"]`` on its own gradient norm. Returns
    the ``(G,)`` losses (detached)."""
    psi = _initial_proposals(x_real, simulator, cfg, generators)
    try:
        losses, trajectory = _ensemble_losses(
            ensemble, simulator, x_real, psi, theta, cfg, generators, members
        )
    except RuntimeError as exc:
        _explain_unroll_error(ensemble, simulator, x_real, psi, cfg, members, step, exc)
        raise
    _check_losses(ensemble, simulator, losses, trajectory, cfg, members, step)
    optimiser.zero_grad(set_to_none=True)
    losses.sum().backward()  # member g's loss reaches only member g's weights
    if cfg["grad_clip"] is not None:
        clip_member_grad_norms_([p.grad for p in ensemble.parameters()], cfg["grad_clip"])
    optimiser.step()
    return losses.detach()


def ensemble_stepper(
    ensemble: Ensemble,
    optimiser: torch.optim.Optimizer,
    simulator: Simulator,
    *,
    cfg: dict[str, Any],
    generators: Sequence[torch.Generator],
    members: Sequence[tuple[str, int]],
    cuda_graph: bool = False,
) -> Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]:
    """:func:`ensemble_step` as a function of ``(x_real, theta, step=)``; on CUDA with
    ``cuda_graph``, the losses and clipped gradients replayed from one CUDA graph for the whole
    group (:func:`alfi.meta_step.stepper` says how), Adam eager."""

    def check(losses: torch.Tensor, means: torch.Tensor, *, step: int) -> None:
        _check_losses(ensemble, simulator, losses, means, cfg, members, step)

    return training_stepper(
        functools.partial(
            ensemble_step,
            *(ensemble, optimiser, simulator),
            cfg=cfg,
            generators=generators,
            members=members,
        ),
        functools.partial(
            _ensemble_gradients, ensemble, optimiser, simulator, cfg, generators, members
        ),
        generators,
        check,
        optimiser,
        enabled=cuda_graph,
    )


def _initial_proposals(
    x_real: torch.Tensor,
    simulator: Simulator,
    cfg: dict[str, Any],
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    r"""Each member's :math:`\psi_1` ``(G, P, 2D)``, from its own generator."""
    shape = (x_real.shape[1],)
    return torch.stack(
        [
            proposal.initial(shape, simulator.theta_dim, g, cfg["initial_log_scale"])
            for g in generators
        ]
    )


def _ensemble_losses(
    ensemble: Ensemble,
    simulator: Simulator,
    x_real: torch.Tensor,
    psi: torch.Tensor,
    theta: torch.Tensor,
    cfg: dict[str, Any],
    generators: Sequence[torch.Generator],
    members: Sequence[tuple[str, int]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The unroll from ``psi`` and each member's loss, unchecked: ``(G,)`` losses and the
    trajectories ``(T + 1, G, P, 2D)``."""
    trajectory = ensemble.unroll(
        simulator,
        x_real,
        psi,
        **unroll_sizes(cfg),
        generators=generators,
    )
    losses = torch.stack(
        [
            variant_loss(trajectory[:, g], theta[g], variant, cfg)
            for g, (variant, _) in enumerate(members)
        ]
    )
    return losses, trajectory


def _ensemble_gradients(
    ensemble: Ensemble,
    optimiser: torch.optim.Optimizer,
    simulator: Simulator,
    cfg: dict[str, Any],
    generators: Sequence[torch.Generator],
    members: Sequence[tuple[str, int]],
    x_real: torch.Tensor,
    theta: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The capturable half of an ensemble step (:func:`alfi.meta_step.stepper`'s, for ``G``
    members): the ``(G,)`` losses and the means ``(T + 1, G, P, D)``."""
    optimiser.zero_grad(set_to_none=False)
    psi = _initial_proposals(x_real, simulator, cfg, generators)
    losses, trajectory = _ensemble_losses(
        ensemble, simulator, x_real, psi, theta, cfg, generators, members
    )
    losses.sum().backward()
    if cfg["grad_clip"] is not None:
        clip_member_grad_norms_([p.grad for p in ensemble.parameters()], cfg["grad_clip"])
    return losses.detach(), trajectory.detach()[..., : simulator.theta_dim]


def _check_losses(
    ensemble: Ensemble,
    simulator: Simulator,
    losses: torch.Tensor,
    trajectory: torch.Tensor,
    cfg: dict[str, Any],
    members: Sequence[tuple[str, int]],
    step: int,
) -> None:
    """Raise the first non-finite member's :class:`~alfi.divergence.NonFiniteLossError`;
    ``trajectory`` ``(T + 1, G, P, *)`` holds the standardised means first."""
    finite = torch.isfinite(losses)
    if not bool(finite.all()):
        g = int((~finite).nonzero()[0])
        means = ensemble.raw_theta(trajectory[..., : simulator.theta_dim].transpose(0, 1))[g]
        raise diagnose_non_finite(
            simulator, means, cfg["n_sim"], members[g][1], step, members[g][0]
        )


def _explain_unroll_error(
    ensemble: Ensemble,
    simulator: Simulator,
    x_real: torch.Tensor,
    psi: torch.Tensor,
    cfg: dict[str, Any],
    members: Sequence[tuple[str, int]],
    step: int,
    exc: RuntimeError,
) -> None:
    """A simulator error in the ensemble's unroll, explained as :func:`alfi.meta_step.batch_loss`
    explains it: raises the divergence of the first member whose proposal diverged (else
    returns, and the caller re-raises ``exc``)."""
    for g, (variant, seed) in enumerate(members):
        model = ensemble.member(g)
        if proposal_diverged(model, simulator, x_real[g], psi[g], cfg, seed, step):
            run = f"{simulator.name}, {variant}, seed {seed}"
            raise diverged_error(step, run, exc) from None
