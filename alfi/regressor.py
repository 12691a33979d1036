r"""The amortisation control: ALFI's data encoder with a regression head, no simulations at test.

.. math:: \hat\theta(X^r) = \mu_\theta + \sigma_\theta \odot
          o\big(\operatorname{enc}(X^r)\big), \qquad
          \mathcal{L} = \frac{1}{|B|} \sum_{p \in B} \big\lVert
          (\hat\theta(X^r_p) - \theta^*_p) / \sigma_\theta \big\rVert_2^2 / D,

``enc`` the same permutation-invariant set encoder as ALFI's (:class:`alfi.nn.SetEncoder`, with the
model settings' sizes, pooling and squash, and the same observation standardisation), ``o`` an MLP
with one hidden layer of ``model.hidden`` units, :math:`\mu_\theta, \sigma_\theta` the prior's
moments. Trained by Adam on the training meta-dataset (the one ALFI meta-trains on) for
``baselines.regressor.epochs`` epochs of mini-batches of ``train.meta_batch`` problems. If it
matched ALFI, ALFI's simulations at test time would buy nothing over amortised regression.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from alfi.evaluate import Trajectory, point_trajectory
from alfi.io import MetaDataset
from alfi.model import squash
from alfi.nn import MLP, SetEncoder
from alfi.seeds import derive_seed
from alfi.simulators import Simulator
from alfi.train import observation_statistics

__all__ = ["Regressor", "fit_regressor", "run_regressor"]


class Regressor(nn.Module):
    """Observations ``(*, M, X)`` to a point estimate ``(*, D)`` in raw units."""

    def __init__(self, simulator: Simulator, model: dict[str, Any], data: MetaDataset) -> None:
        super().__init__()
        self.squash = model.get("squash", "none")
        self.encoder = SetEncoder(
            simulator.observation_dim,
            model["x_hidden"],
            model["encoding"],
            model.get("pooling", "mean"),
        )
        self.head = MLP(model["encoding"], [model["hidden"]], simulator.theta_dim)
        theta_mean, theta_std = simulator.prior_moments()
        x_mean, x_std = observation_statistics(simulator, data.x, self.squash)
        for name, value in (("theta_mean", theta_mean), ("theta_std", theta_std)):
            self.register_buffer(name, value.float())
        self.register_buffer("x_mean", x_mean)
        self.register_buffer("x_std", x_std)

    def standardised(self, simulator: Simulator, x: Tensor) -> Tensor:
        """The head's output: the estimate in prior-standardised units, ``(*, D)``."""
        features = squash(simulator.preprocess(x), self.squash)
        return self.head(self.encoder((features - self.x_mean) / self.x_std))

    def forward(self, simulator: Simulator, x: Tensor) -> Tensor:
        return self.theta_mean + self.theta_std * self.standardised(simulator, x)


def fit_regressor(
    simulator: Simulator,
    data: MetaDataset,
    settings: dict[str, Any],
    *,
    seed: int,
    device: torch.device,
) -> tuple[Regressor, dict[str, float]]:
    """Train a :class:`Regressor` on ``data``; returns it and its training cost
    (``train_simulations``: the meta-dataset's observations, ``train_seconds``)."""
    start = time.perf_counter()
    cfg = settings["baselines"]["regressor"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init", simulator.name, "regressor"))
        model = Regressor(simulator, settings["model"], data).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    generator = torch.Generator().manual_seed(
        derive_seed(seed, "train", simulator.name, "regressor")
    )
    x, theta = data.x.to(device), data.theta.to(device)
    target = (theta - model.theta_mean) / model.theta_std
    batch = settings["train"]["meta_batch"]
    for _ in range(cfg["epochs"]):
        for rows in torch.randperm(len(data), generator=generator).to(device).split(batch):
            loss = (model.standardised(simulator, x[rows]) - target[rows]).pow(2).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    model.eval()
    cost = {
        "train_simulations": float(data.x.shape[0] * data.x.shape[1]),
        "train_seconds": time.perf_counter() - start,
    }
    return model, cost


@torch.no_grad()
def run_regressor(
    model: Regressor, simulator: Simulator, data: MetaDataset, generator: torch.Generator
) -> Trajectory:
    """The regressor's estimate of every problem, as a one-point trajectory ``(1, N, D)``."""
    start = time.perf_counter()
    estimate = model(simulator, data.x.to(generator.device))
    return point_trajectory(simulator, data, estimate, generator, start=start)
