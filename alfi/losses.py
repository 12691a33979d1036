r"""The meta-training objective :math:`\mathcal{L} = \sum_{t=1}^T w_t\, \ell(\psi_{t+1}, \theta^*)`.

Partial losses (Appendix A), in the standardised space:

* ``mse``: :math:`\ell = \lVert \mu - \theta^* \rVert_2^2`;
* ``nll``: :math:`\ell = -\log q(\theta^* \mid \psi)`.

Weightings of the ``T`` updates, :math:`x_t = t / T`:

* ``last``: :math:`w_t = \mathbb{1}_{t = T}`;
* ``const``: :math:`w_t = 1`;
* ``exp``: :math:`w_t = (e^{\beta x_t} - 1) / (e^\beta - 1)`, from ~0 to 1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from alfi import proposal
from alfi.columns import LOSSES, WEIGHTINGS

__all__ = ["LOSSES", "WEIGHTINGS", "step_weights", "partial_loss", "meta_loss"]


def step_weights(
    kind: str, steps: int, beta: float = 5.0, device: torch.device | str = "cpu"
) -> Tensor:
    """The ``(T,)`` weights of the updates ``t = 1..T``."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t = torch.arange(1, steps + 1, dtype=torch.float32, device=device)
    if kind == "last":
        return (t == steps).float()
    if kind == "const":
        return torch.ones_like(t)
    if kind == "exp":
        if beta <= 0:
            raise ValueError(f"exp weighting needs beta > 0, got {beta}")
        return torch.expm1(beta * t / steps) / math.expm1(beta)
    raise ValueError(f"unknown weighting {kind!r}; expected one of {', '.join(WEIGHTINGS)}")


def partial_loss(kind: str, psi: Tensor, theta: Tensor) -> Tensor:
    """``psi`` ``(*, 2D)`` against ``theta`` ``(*, D)``, returns ``(*)``."""
    if kind == "mse":
        mean, _ = proposal.split(psi)
        return ((mean - theta) ** 2).sum(-1)
    if kind == "nll":
        return -proposal.log_prob(psi, theta)
    raise ValueError(f"unknown loss {kind!r}; expected one of {', '.join(LOSSES)}")


def meta_loss(
    trajectory: Tensor,
    theta: Tensor,
    loss: str = "nll",
    weighting: str = "exp",
    beta: float = 5.0,
    tail: int = 0,
    tail_weight: float = 1.0,
) -> Tensor:
    r"""Weighted loss of a trajectory ``(T + tail + 1, P, 2D)`` (``psi_1`` first) for ``theta``
    ``(P, D)``.

    Averaged over the ``P`` problems; :math:`\psi_1` carries no weight (it does not depend on
    the network). The last ``tail`` updates (run past the horizon ``T``) each get
    ``tail_weight`` times the weight of update ``T``: the machine learns to hold a good proposal
    rather than keep moving it. ``tail_weight = 1 / tail`` spreads one update's weight over the
    tail, so a longer tail does not take the loss's share from the updates up to ``T``.
    """
    steps = trajectory.shape[0] - 1 - tail
    weights = step_weights(weighting, steps, beta, trajectory.device)
    if tail:
        if tail_weight <= 0:
            raise ValueError(f"tail_weight must be > 0, got {tail_weight}")
        weights = torch.cat((weights, (tail_weight * weights[-1]).expand(tail)))
    per_step = partial_loss(loss, trajectory[1:], theta.unsqueeze(0)).mean(-1)  # (T,)
    return (weights * per_step).sum()
