r"""The simulator protocol every benchmark problem implements.

A simulator is a stochastic map :math:`\theta \mapsto x \sim p(x \mid \theta)` with a uniform prior
box :math:`\theta \in [\ell, u] \subset \mathbb{R}^D`, observations
:math:`x \in \mathbb{R}^{X}` and,
because every problem of the suite has a tractable likelihood, an exact maximum-likelihood
estimator over the prior box used as the reference method.

To add a problem, subclass :class:`Simulator`, set the class attributes and implement
:meth:`Simulator.simulate` and :meth:`Simulator.mle`; decorate it with
:func:`alfi.simulators.register` and it is usable everywhere (CLI, workflow, config) by its name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["Simulator"]


class Simulator:
    r"""Base class of a batched simulator with a uniform prior and an exact MLE.

    Class attributes:
        name: registry key, e.g. ``"poisson"``.
        parameter_names: one name per component of :math:`\theta` (length ``D``).
        observation_dim: the size ``X`` of one observation.
        prior_low, prior_high: the prior box, one bound per parameter.
        observation_support: the interval ``(low, high)`` every observation coordinate lies in
            (infinite ends where unbounded); figures draw densities over it.
        discrete_observations: True when observations are integers, so that
            :meth:`log_likelihood` is a log probability mass (histograms then use integer bins).
    """

    name: str = ""
    parameter_names: Sequence[str] = ()
    observation_dim: int = 1
    prior_low: Sequence[float] = ()
    prior_high: Sequence[float] = ()
    observation_support: tuple[float, float] = (-math.inf, math.inf)
    discrete_observations: bool = False

    @property
    def theta_dim(self) -> int:
        return len(self.parameter_names)

    def bounds(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """The prior box as two tensors of shape ``(D,)`` (read-only, cached per device).

        Cached because every unroll step clamps to the box: building the tensors anew would copy
        from the host at every step on a GPU.
        """
        return (
            self.constant("prior_low", self.prior_low, device),
            self.constant("prior_high", self.prior_high, device),
        )

    def constant(
        self,
        name: str,
        values: Sequence,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
    ) -> Tensor:
        """``values`` as a tensor on ``device``, made once per (``name``, device, dtype) and
        cached on the simulator: a simulator's fixed numbers, read at every simulation, cost no
        host-to-device copy after the first (a copy per call would also stop a CUDA graph)."""
        cache = self.__dict__.setdefault("_constants", {})
        key = (name, str(torch.device(device)), dtype)
        if key not in cache:
            cache[key] = torch.tensor(values, dtype=dtype, device=device)
        return cache[key]

    def prior_moments(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        r"""Prior mean :math:`(\ell+u)/2` and standard deviation :math:`(u-\ell)/\sqrt{12}`."""
        low, high = self.bounds(device)
        return (low + high) / 2, (high - low) / math.sqrt(12.0)

    def sample_prior(self, shape: Sequence[int], generator: torch.Generator) -> Tensor:
        r"""Draw :math:`\theta \sim \mathcal{U}[\ell, u]`, shape ``(*shape, D)``."""
        low, high = self.bounds(generator.device)
        u = torch.rand((*shape, self.theta_dim), generator=generator, device=generator.device)
        return low + (high - low) * u

    def clamp(self, theta: Tensor) -> Tensor:
        """Project ``theta`` of shape ``(*, D)`` onto the prior box.

        Proposals are unbounded Gaussians; the simulators are only defined (or only meaningful)
        on the prior box, so every sampled parameter is projected onto it before simulation.
        """
        low, high = self.bounds(theta.device)
        return torch.maximum(torch.minimum(theta, high), low)

    def simulate(self, theta: Tensor, n: int, generator: torch.Generator) -> Tensor:
        r"""Draw ``n`` i.i.d. observations for each parameter.

        Args:
            theta: parameters, shape ``(*, D)``, inside the prior box.
            n: number of observations per parameter.
            generator: the source of randomness, on the same device as ``theta``.

        Returns:
            Observations of shape ``(*, n, X)``.
        """
        raise NotImplementedError

    def mle(self, x: Tensor) -> Tensor:
        r"""The maximum-likelihood estimate over the prior box.

        Args:
            x: observations, shape ``(*, n, X)``.

        Returns:
            :math:`\hat\theta`, shape ``(*, D)``.
        """
        raise NotImplementedError

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        r"""Exact :math:`\sum_j \log p(x_j \mid \theta)`, ``theta`` ``(*, D)``, ``x`` ``(*, n, X)``.

        Used to check the MLE against a generic numerical maximisation; returns shape ``(*)``.
        """
        raise NotImplementedError

    def derived(self, theta: Tensor) -> dict[str, Tensor]:
        """Identifiable functions of ``theta`` reported beside it (name to tensor of shape ``(*)``).

        Empty unless the parameters are not identifiable, as for Weinberg.
        """
        return {}

    def preprocess(self, x: Tensor) -> Tensor:
        """A fixed, invertible transform applied to observations before the learned encoder.

        Identity by default; heavy-tailed counts use ``log1p``. Shape ``(*, X)`` to ``(*, X)``.
        """
        return x

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, D={self.theta_dim})"
