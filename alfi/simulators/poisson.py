r"""Poisson counts (Appendix B.2).

.. math:: \theta = \log\lambda \sim \mathcal{U}[0.2, 7], \qquad x \sim \mathcal{P}(e^\theta).

MLE over the prior box: :math:`\hat\theta = \operatorname{clip}(\log \bar x, 0.2, 7)`. When every
count is 0 the likelihood :math:`e^{-n\lambda}` decreases in :math:`\lambda`, so the constrained
maximum is the lower bound 0.2 (``log 0 = -inf`` clipped).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from alfi.simulators import register
from alfi.simulators.base import Simulator

__all__ = ["Poisson"]


@register
class Poisson(Simulator):
    name = "poisson"
    parameter_names = ("log_rate",)
    observation_dim = 1
    prior_low = (0.2,)
    prior_high = (7.0,)
    observation_support = (0.0, math.inf)
    discrete_observations = True

    def simulate(self, theta: Tensor, n: int, generator: torch.Generator) -> Tensor:
        rate = theta.exp().unsqueeze(-2).expand(*theta.shape[:-1], n, 1)
        return torch.poisson(rate.contiguous(), generator=generator)

    def mle(self, x: Tensor) -> Tensor:
        return self.clamp(x.mean(dim=-2).log())

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        rate = theta.exp().unsqueeze(-2)
        return (x * rate.log() - rate - torch.lgamma(x + 1)).sum(dim=(-2, -1))

    def preprocess(self, x: Tensor) -> Tensor:
        # Counts span three orders of magnitude over the prior (lambda from 1.2 to 1100);
        # log1p puts every problem on a comparable scale for the encoder.
        return torch.log1p(x)
