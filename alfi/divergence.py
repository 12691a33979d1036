"""Why a meta-loss is not finite: the simulator, a diverged proposal, or the optimisation.

Only on the failure path: training pays no synchronisation for these checks. A loss that is
NaN or infinite is traced by simulating at the proposal means the unroll visited (does the
simulator return non-finite data at finite parameters?) and by whether those means are finite;
a simulator that raises inside the unroll is traced by replaying the unroll without gradients,
from a random stream of its own, with every θ checked before it reaches the simulator.
"""

from __future__ import annotations

from typing import Any

import torch

from alfi.data import check_simulation
from alfi.model import ALFI
from alfi.schedule import unroll_sizes
from alfi.seeds import derive_seed
from alfi.simulators import Simulator

__all__ = [
    "NonFiniteLossError",
    "TrainingDivergedError",
    "diagnose_non_finite",
    "proposal_diverged",
    "diverged_error",
]


class NonFiniteLossError(RuntimeError):
    """The meta-loss became NaN or infinite; the weights of the step before are kept."""


class TrainingDivergedError(NonFiniteLossError):
    """A non-finite meta-loss that is the training's own: the simulator returns finite data
    where the proposal went (or the proposal itself is no longer finite). A study may count it
    as a diverged seed; a plain :class:`NonFiniteLossError` is a simulator's fault instead."""


REMEDY = (
    "lower train.lr, set train.grad_clip, shorten train.tail_steps (for this variant alone: "
    "variant_overrides), or set model.score_gradient: bounded or none"
)


def diagnose_non_finite(
    simulator: Simulator, means: torch.Tensor, n_sim: int, seed: int, step: int, variant: str
) -> NonFiniteLossError:
    """Why the loss is not finite, from the proposal means visited ``(T + 1, P, D)`` (raw units):
    the simulator returning NaN/inf at finite ones; else the proposal itself diverging; else
    (neither) the optimisation."""
    dim = simulator.theta_dim
    visited = means.detach().reshape(-1, dim)
    finite = visited.isfinite().all(-1)
    points = simulator.clamp(visited[finite])
    generator = torch.Generator(device=visited.device).manual_seed(derive_seed(seed, step))
    try:
        check_simulation(simulator, points, simulator.simulate(points, n_sim, generator), n_sim)
    except RuntimeError as exc:
        return NonFiniteLossError(f"meta-loss is not finite at step {step}: {exc}")
    where = f"meta-loss is not finite at step {step} ({simulator.name}, {variant})"
    if not bool(finite.all()):
        return TrainingDivergedError(
            f"{where}: the proposal became non-finite (the weights diverged) although the "
            f"simulator returns finite data; {REMEDY}"
        )
    return TrainingDivergedError(
        f"{where} although the simulator returns finite data on the visited parameters; " + REMEDY
    )


class _NonFiniteParameters(Exception):
    pass


class _FiniteGuard:
    """``simulator`` that raises :class:`_NonFiniteParameters` when handed non-finite θ."""

    def __init__(self, simulator: Simulator) -> None:
        self._simulator = simulator

    def __getattr__(self, name: str) -> Any:
        return getattr(self._simulator, name)

    def simulate(self, theta: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        if not bool(theta.isfinite().all()):
            raise _NonFiniteParameters
        return self._simulator.simulate(theta, n, generator)


def proposal_diverged(
    model: ALFI,
    simulator: Simulator,
    x_real: torch.Tensor,
    psi: torch.Tensor,
    cfg: dict[str, Any],
    seed: int,
    step: int,
) -> bool:
    """After a simulator error in the unroll: did the proposal hand it non-finite parameters?
    Replays the unroll (no gradients, its own random stream) with every θ checked; only on this
    failure path, so training itself pays no synchronisation for it."""
    generator = torch.Generator(device=psi.device).manual_seed(derive_seed(seed, "replay", step))
    try:
        with torch.no_grad():
            model.unroll(
                _FiniteGuard(simulator),
                x_real,
                psi,
                **unroll_sizes(cfg),
                generator=generator,
            )
    except _NonFiniteParameters:
        return True
    except RuntimeError:
        return False
    return False


def diverged_error(step: int, run: str, error: Exception) -> TrainingDivergedError:
    """The error of a run (``"poisson, nll-exp"``) whose weights diverged so far that the
    simulator refused the parameters the proposal gave it."""
    return TrainingDivergedError(
        f"the proposal became non-finite at step {step} ({run}): the weights diverged, and the "
        f"simulator refused the parameters ({error}); {REMEDY}"
    )
