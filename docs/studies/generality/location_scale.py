"""A simulator nobody tuned for: the location-scale Gaussian, plugged in as a user would.

x ~ N(mu, s^2) i.i.d., theta = (mu, s) in the box [-5, 5] x [0.5, 5]. The MLE over the box is
the clamped sample mean mu_hat, then the root mean square deviation about mu_hat, clamped: for
any s the likelihood is best at mu_hat, and s's profile likelihood is unimodal. The accuracy
study's sections "The late tail on another CPU" and "A spread one layer away" run it, with the
README's ``gaussian_mean``, through the workflow from the repository's root::

    PYTHONPATH=docs/studies/generality snakemake --cores all --config \
        results=results/generality 'plugins=[location_scale]' \
        'simulators=[gaussian_mean,location_scale]' 'variants={default: [nll-exp]}' \
        'methods=[alfi,mle,posterior]' 'seeds=[0,1,2]'
"""

import math

import torch

from alfi.simulators import Simulator, register


@register
class LocationScale(Simulator):
    name = "location_scale"
    parameter_names = ("mu", "s")
    observation_dim = 1
    prior_low = (-5.0, 0.5)
    prior_high = (5.0, 5.0)

    def simulate(self, theta, n, generator):
        # theta (*, 2) -> observations (*, n, 1)
        noise = torch.randn((*theta.shape[:-1], n, 1), generator=generator, device=theta.device)
        return theta[..., None, 0:1] + theta[..., None, 1:2] * noise

    def mle(self, x):
        # observations (*, n, 1) -> estimate (*, 2)
        low, high = self.bounds(x.device)
        mean = x.mean(dim=-2).clamp(low[0], high[0])
        spread = ((x - mean.unsqueeze(-2)) ** 2).mean(dim=(-2, -1)).sqrt().unsqueeze(-1)
        return self.clamp(torch.cat([mean, spread], dim=-1))

    def log_likelihood(self, theta, x):
        # the exact log p(X | theta), (*,)
        mu, s = theta[..., 0:1].unsqueeze(-2), theta[..., 1:2].unsqueeze(-2)
        z = (x - mu) / s
        return (-0.5 * z**2 - torch.log(s) - 0.5 * math.log(2 * math.pi)).sum(dim=(-2, -1))


@register
class GaussianMean(Simulator):
    """The README's plug-in example, x ~ N(theta, 1)."""

    name = "gaussian_mean"
    parameter_names = ("mean",)
    observation_dim = 1
    prior_low = (-5.0,)
    prior_high = (5.0,)

    def simulate(self, theta, n, generator):
        noise = torch.randn((*theta.shape[:-1], n, 1), generator=generator, device=theta.device)
        return theta.unsqueeze(-2) + noise

    def mle(self, x):
        return self.clamp(x.mean(dim=-2))

    def log_likelihood(self, theta, x):
        squares = ((x - theta.unsqueeze(-2)) ** 2).sum(dim=(-2, -1))
        return -0.5 * squares - 0.5 * x.shape[-2] * math.log(2 * math.pi)
