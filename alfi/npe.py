r"""Neural posterior estimation (sbi's ``NPE``) with a permutation-invariant embedding.

A conditional density :math:`q_\phi(\theta \mid e(X^r))` (``baselines.npe.density``: sbi's mixture
density network in ``config.yaml``, a neural spline flow or MAF otherwise) is fitted by maximum
likelihood, :math:`\max_\phi \sum_p \log q_\phi(\theta^*_p \mid e(X^r_p))`, on the training
meta-dataset ALFI meta-trains on, so NPE spends the same simulations in training and none at
test time. The embedding :math:`e` is sbi's ``PermutationInvariantEmbedding``: a
per-observation network (``FCEmbedding``, ``model.x_hidden`` units) averaged over the ``M``
observations, then an MLP (``model.hidden`` units) to ``model.encoding`` features; observations
go in preprocessed, squashed (``baselines.npe.squash``, asinh by default: without it the heavy
tails of a steep line's responses leave NPE at 58x the MLE on linear regression, with it 13x)
and standardised, as ALFI's are (:mod:`alfi.model`).

sbi's training splits off ``validation_fraction`` of the problems and stops after
``stop_after_epochs`` epochs without improvement (or ``max_epochs``). Draws are rejected outside
the prior box, so the posterior is truncated to the prior's support, as the exact one is. The
estimate is the mean of the draws, its spread their standard deviation.

Needs the optional ``baselines`` extra (``pip install -e '.[baselines]'``).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from alfi.config import derive_seed
from alfi.evaluate import Trajectory, point_trajectory
from alfi.io import MetaDataset
from alfi.model import squash
from alfi.simulators import Simulator
from alfi.train import observation_statistics

__all__ = ["NPEResult", "fit_npe", "run_npe"]

#: Draws per problem for the estimate when the configuration keeps none (``evaluate.draws: 0``).
ESTIMATE_DRAWS = 1000


class NPEResult:
    """A trained sbi posterior and the standardisation its inputs need."""

    def __init__(self, posterior: Any, x_mean: Tensor, x_std: Tensor, squash_kind: str) -> None:
        self.posterior, self.x_mean, self.x_std, self.squash = posterior, x_mean, x_std, squash_kind

    def features(self, simulator: Simulator, x: Tensor) -> Tensor:
        """Raw observations ``(N, M, X)`` to the embedding's input ``(N, M, X)``."""
        values = squash(simulator.preprocess(x), self.squash)
        return ((values - self.x_mean.to(x.device)) / self.x_std.to(x.device)).float()


class _NoTracker:
    """sbi's tracking protocol, discarding everything: by default sbi writes TensorBoard logs to
    ``./sbi-logs`` (the workflow's folder); the training summary stays on the trainer."""

    log_dir = None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        pass

    def flush(self) -> None:
        pass


def _sbi():
    try:
        import sbi.inference
        import sbi.neural_nets
        import sbi.neural_nets.embedding_nets
        import sbi.utils
    except ImportError as error:
        raise ImportError(
            "method 'npe' needs the optional package sbi; install it with: "
            "pip install -e '.[baselines]'"
        ) from error
    return sbi


def fit_npe(
    simulator: Simulator,
    data: MetaDataset,
    settings: dict[str, Any],
    *,
    seed: int,
    device: torch.device,
) -> tuple[NPEResult, dict[str, float]]:
    """Train NPE on ``data``; returns the posterior and its training cost
    (``train_simulations``: the meta-dataset's observations, ``train_seconds``)."""
    sbi = _sbi()
    start = time.perf_counter()
    cfg, model = settings["baselines"]["npe"], settings["model"]
    x_mean, x_std = observation_statistics(simulator, data.x, cfg["squash"])
    result = NPEResult(None, x_mean, x_std, cfg["squash"])
    low, high = simulator.bounds(device)
    prior = sbi.utils.BoxUniform(low.float(), high.float(), device=device.type)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(derive_seed(seed, "npe", simulator.name))
        trial = sbi.neural_nets.embedding_nets.FCEmbedding(
            simulator.observation_dim,
            model["encoding"],
            num_layers=len(model["x_hidden"]) + 1,
            num_hiddens=model["x_hidden"][0],
        )
        embedding = sbi.neural_nets.embedding_nets.PermutationInvariantEmbedding(
            trial,
            model["encoding"],
            aggregation_fn="mean",
            num_layers=2,
            num_hiddens=model["hidden"],
            output_dim=model["encoding"],
        )
        estimator = sbi.neural_nets.posterior_nn(
            cfg["density"], embedding_net=embedding, z_score_x="none"
        )
        inference = sbi.inference.NPE(
            prior=prior,
            density_estimator=estimator,
            device=device.type,
            show_progress_bars=False,
            tracker=_NoTracker(),
        )
        inference.append_simulations(
            data.theta.to(device).float(), result.features(simulator, data.x.to(device))
        )
        inference.train(
            training_batch_size=cfg["batch"],
            learning_rate=cfg["lr"],
            max_num_epochs=cfg["max_epochs"],
            stop_after_epochs=cfg["stop_after_epochs"],
        )
        result.posterior = inference.build_posterior()
    cost = {
        "train_simulations": float(data.x.shape[0] * data.x.shape[1]),
        "train_seconds": time.perf_counter() - start,
    }
    return result, cost


@torch.no_grad()
def run_npe(
    npe: NPEResult,
    simulator: Simulator,
    data: MetaDataset,
    generator: torch.Generator,
    *,
    seed: int,
    draws: int = 0,
) -> Trajectory:
    """NPE's posterior mean and std for every problem (``(1, N, D)``), and ``draws`` draws per
    problem ``(N, S, D)`` when asked for. sbi draws from the global torch generator, so it is
    seeded from ``seed`` inside a forked RNG state."""
    start = time.perf_counter()
    device = generator.device
    features = npe.features(simulator, data.x.to(device))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(derive_seed(seed, "npe-draws", simulator.name))
        samples = npe.posterior.sample_batched(
            (max(draws, ESTIMATE_DRAWS),), x=features, show_progress_bars=False
        ).transpose(0, 1)  # (N, S, D)
    derived = {k: v.mean(1) for k, v in simulator.derived(samples).items()}
    return point_trajectory(
        simulator,
        data,
        samples.mean(1),
        generator,
        start=start,
        sigma=samples.std(1),
        draws=samples[:, :draws] if draws else None,
        derived=derived,
    )
