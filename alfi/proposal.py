r"""The Gaussian proposal :math:`q(\theta \mid \psi) = \mathcal{N}(\mu, \operatorname{diag}
\sigma^2)`.

Parameters :math:`\psi = (\mu, \log\sigma) \in \mathbb{R}^{2D}`, in the standardised
:math:`\theta` space of the model. Its log-density and score are closed-form:

.. math::
    \log q(\theta \mid \psi) = -\sum_d \Big[\tfrac12 \epsilon_d^2 + \log\sigma_d
        + \tfrac12\log 2\pi\Big], \quad \epsilon = (\theta - \mu)/\sigma,

.. math::
    \nabla_\mu \log q = \epsilon / \sigma, \qquad \nabla_{\log\sigma} \log q = \epsilon^2 - 1.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["split", "join", "sample", "log_prob", "score", "whitened_score", "initial"]

_HALF_LOG_TWO_PI = 0.5 * math.log(2 * math.pi)


def split(psi: Tensor) -> tuple[Tensor, Tensor]:
    """``psi`` ``(*, 2D)`` into mean ``(*, D)`` and log-scale ``(*, D)``."""
    return psi.chunk(2, dim=-1)


def join(mean: Tensor, log_scale: Tensor) -> Tensor:
    """Inverse of :func:`split`."""
    return torch.cat((mean, log_scale), dim=-1)


def sample(psi: Tensor, n: int, generator: torch.Generator) -> Tensor:
    r"""``n`` draws :math:`\theta \sim q(\cdot \mid \psi)`: ``psi`` ``(*, 2D)`` to ``(*, n, D)``."""
    mean, log_scale = split(psi)
    noise = torch.randn(
        (*mean.shape[:-1], n, mean.shape[-1]),
        generator=generator,
        device=psi.device,
        dtype=psi.dtype,
    )
    return mean.unsqueeze(-2) + log_scale.exp().unsqueeze(-2) * noise


def log_prob(psi: Tensor, theta: Tensor) -> Tensor:
    r""":math:`\log q(\theta \mid \psi)`: ``psi`` ``(*, 2D)``, ``theta`` ``(*, D)`` to ``(*)``."""
    mean, log_scale = split(psi)
    eps = (theta - mean) * torch.exp(-log_scale)
    return -(0.5 * eps**2 + log_scale + _HALF_LOG_TWO_PI).sum(-1)


def score(psi: Tensor, theta: Tensor) -> Tensor:
    r""":math:`\nabla_\psi \log q(\theta \mid \psi)`, ``psi`` ``(*, 2D)``, ``theta`` ``(*, D)`` to
    ``(*, 2D)``; ``psi`` broadcasts against ``theta``."""
    mean, log_scale = split(psi)
    inv_scale = torch.exp(-log_scale)
    eps = (theta - mean) * inv_scale
    return join(eps * inv_scale, eps**2 - 1.0)


def whitened_score(psi: Tensor, theta: Tensor) -> Tensor:
    r"""The score premultiplied by the inverse square root of the Fisher information,
    :math:`(\epsilon, (\epsilon^2 - 1)/\sqrt2)`; shapes as :func:`score`.

    Same direction information as :func:`score`, but of unit variance under :math:`q` whatever
    :math:`\sigma`: the raw :math:`\nabla_\mu` grows as :math:`1/\sigma` while the proposal
    contracts, which would push the network's inputs out of the range it was trained on.
    """
    mean, log_scale = split(psi)
    eps = (theta - mean) * torch.exp(-log_scale)
    return join(eps, (eps**2 - 1.0) / math.sqrt(2.0))


def initial(
    batch: tuple[int, ...], dim: int, generator: torch.Generator, log_scale: float = 0.5
) -> Tensor:
    r"""Initial :math:`\psi_1`: :math:`\mu_1` from the prior, :math:`\log\sigma_1 =` ``log_scale``.

    In the standardised space the uniform prior is :math:`\mathcal{U}[-\sqrt3, \sqrt3]^D`.
    Returns ``(*batch, 2D)``.
    """
    u = torch.rand((*batch, dim), generator=generator, device=generator.device)
    mean = math.sqrt(3.0) * (2.0 * u - 1.0)
    return join(mean, torch.full_like(mean, log_scale))
