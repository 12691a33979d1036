r"""Neural posterior estimation (sbi's ``NPE``) with a permutation-invariant embedding.

A conditional density :math:`q_\phi(\theta \mid e(X^r))` (``baselines.npe.density``: sbi's mixture
density network of ``baselines.npe.components`` Gaussians in ``config.yaml``, a neural spline
flow or MAF otherwise) is fitted by maximum likelihood,
:math:`\max_\phi \sum_p \log q_\phi(\theta^*_p \mid e(X^r_p))`, on the training meta-dataset
ALFI meta-trains on, so NPE spends the same simulations in training and none at
test time. The embedding :math:`e` pools a per-observation network over the ``M``
observations, then maps the pooled features through an MLP (sbi's ``FCEmbedding``, two layers
of ``model.hidden`` units) to ``model.encoding`` features. ``baselines.npe.pooling`` chooses the
pooling: ``mean`` is sbi's ``PermutationInvariantEmbedding`` (per-observation ``FCEmbedding`` of
``model.x_hidden`` units, averaged); ``mean-max`` and ``mean-max-std`` are ALFI's own set
encoder (:class:`alfi.nn.SetEncoder`, whose last layer reads :math:`[\operatorname{mean}_j
h_j, \max_j h_j]`, and :math:`\operatorname{std}_j h_j` with the latter), which sbi does not
offer: a mean alone approaches a sample maximum, the sufficient statistic of a uniform's upper
end, only at the :math:`1/\sqrt{M}` rate. Observations
go in preprocessed, squashed (``baselines.npe.squash``, asinh by default: without it the heavy
tails of a steep line's responses leave NPE at 58x the MLE on linear regression, with it 13x)
and standardised, as ALFI's are (:mod:`alfi.model`).

sbi's training splits off ``validation_fraction`` of the problems and stops after
``stop_after_epochs`` epochs without improvement (or ``max_epochs``), keeping the best weights.
With ``baselines.npe.anneal`` (``{factor, stop_after_epochs}``) it resumes from them at ``factor``
times the rate, on the same split, until ``anneal.stop_after_epochs`` epochs bring no better
validation loss (or ``max_epochs`` more): NPE's intervals, 1.3-2.6 times the exact width
at one rate, narrow to 1.05-1.6 (docs/studies/npe_budget.md, "Annealing"). Draws are rejected
outside the prior box, so the posterior is truncated to the prior's support, as the exact one
is. The estimate is the mean of the draws, its spread their standard deviation.

Leakage. A density trained on few problems can put almost all of a test problem's mass outside
the box; sbi's rejection sampler then never finishes (0.000 % accepted: seen on linear
regression at 100 training problems). So the mass inside the box, :math:`Z_n = q(\theta \in
\text{box} \mid x_n)`, is first estimated from ``PROBE_DRAWS`` unrejected draws per problem
(an RNG stream of its own, so the draws below do not depend on it); where fewer than
``MIN_INSIDE`` land inside (:math:`\hat Z_n < 10^{-3}`: rejection would need over
:math:`10^6` proposals per problem), that problem's draws are the unrejected ones projected
onto the box (:meth:`Simulator.clamp`), and a warning names the problems. Every other
problem is sampled by sbi's rejection, exactly as without the check.

Needs the optional ``baselines`` extra (``pip install -e '.[baselines]'``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch import Tensor, nn

from alfi.evaluate import Trajectory, point_trajectory
from alfi.io import MetaDataset
from alfi.model import squash
from alfi.nn import POOLINGS, SetEncoder
from alfi.seeds import derive_seed
from alfi.simulators import Simulator
from alfi.train import observation_statistics

__all__ = ["NPEResult", "fit_npe", "run_npe", "inside_mass", "sample_truncated"]

#: Draws per problem for the estimate when the configuration keeps none (``evaluate.draws: 0``).
ESTIMATE_DRAWS = 1000
#: Unrejected draws per problem that estimate the mass inside the prior box.
PROBE_DRAWS = 10_000
#: Fewest of them inside the box for sbi's rejection sampler to be used.
MIN_INSIDE = 10

log = logging.getLogger(__name__)


class NPEResult:
    """A trained sbi posterior, the standardisation its inputs need, and the epochs its training
    took (both phases with ``anneal``; 0 before training)."""

    def __init__(self, posterior: Any, x_mean: Tensor, x_std: Tensor, squash_kind: str) -> None:
        self.posterior, self.x_mean, self.x_std, self.squash = posterior, x_mean, x_std, squash_kind
        self.epochs = 0

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


def _forked(device: torch.device):
    """A forked global RNG state (sbi draws from the global generator): CPU, and ``device``'s."""
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


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


def _embedding(sbi: Any, simulator: Simulator, model: dict[str, Any], pooling: str) -> nn.Module:
    """Observations ``(N, M, X)`` to ``(N, model.encoding)``, pooled by ``pooling``."""
    nets = sbi.neural_nets.embedding_nets
    head = {"num_layers": 2, "num_hiddens": model["hidden"]}
    if pooling == "mean":
        trial = nets.FCEmbedding(
            simulator.observation_dim,
            model["encoding"],
            num_layers=len(model["x_hidden"]) + 1,
            num_hiddens=model["x_hidden"][0],
        )
        return nets.PermutationInvariantEmbedding(
            trial, model["encoding"], aggregation_fn="mean", output_dim=model["encoding"], **head
        )
    if pooling in POOLINGS:  # the others: ALFI's set encoder
        encoder = SetEncoder(
            simulator.observation_dim, model["x_hidden"], model["encoding"], pooling
        )
        pooled = nets.FCEmbedding(model["encoding"], model["encoding"], **head)
        return nn.Sequential(encoder, pooled)
    *others, last = map(repr, POOLINGS)
    raise ValueError(f"baselines.npe.pooling {pooling!r}: expected {', '.join(others)} or {last}")


def _anneal(inference: Any, cfg: dict[str, Any]) -> None:
    """Resume sbi's training of ``inference`` at ``anneal.factor`` times ``lr`` until
    ``anneal.stop_after_epochs`` epochs bring no better validation loss than the best of both
    phases."""
    anneal = cfg["anneal"]
    if not hasattr(inference, "_epochs_since_last_improvement"):
        raise RuntimeError(
            "baselines.npe.anneal restarts sbi's early-stopping count "
            "(_epochs_since_last_improvement), which this sbi version lacks; expected sbi's "
            "0.27 trainer, or leave baselines.npe.anneal out"
        )
    for group in inference.optimizer.param_groups:
        group["lr"] = cfg["lr"] * anneal["factor"]
    # sbi's first check on resuming counts the last epoch of the first phase once more.
    inference._epochs_since_last_improvement = -1
    first = inference.epoch
    inference.train(
        training_batch_size=cfg["batch"],
        max_num_epochs=first + cfg["max_epochs"],
        stop_after_epochs=anneal["stop_after_epochs"],
        resume_training=True,
    )
    log.info(
        "annealed NPE: %d epochs at lr %.3g", inference.epoch - first, cfg["lr"] * anneal["factor"]
    )


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
    with _forked(device):
        torch.manual_seed(derive_seed(seed, "npe", simulator.name))
        embedding = _embedding(sbi, simulator, model, cfg.get("pooling", "mean"))
        # absent: sbi's own default; set only with the mdn density (alfi.config checks)
        mixture = {"num_components": cfg["components"]} if "components" in cfg else {}
        estimator = sbi.neural_nets.posterior_nn(
            cfg["density"], embedding_net=embedding, z_score_x="none", **mixture
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
        if cfg.get("anneal"):
            _anneal(inference, cfg)
        result.posterior = inference.build_posterior()
        result.epochs = int(inference.epoch)
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
    samples = sample_truncated(
        npe.posterior, simulator, features, max(draws, ESTIMATE_DRAWS), seed=seed
    )
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


@torch.no_grad()
def inside_mass(posterior: Any, simulator: Simulator, features: Tensor, *, seed: int) -> Tensor:
    r"""Fraction of ``PROBE_DRAWS`` unrejected draws per problem inside the prior box, ``(N,)``:
    a Monte Carlo estimate of :math:`Z_n` (standard error :math:`\sqrt{Z_n(1-Z_n)/P}`)."""
    with _forked(features.device):
        torch.manual_seed(derive_seed(seed, "npe-inside-mass", simulator.name))
        raw = posterior.sample_batched(
            (PROBE_DRAWS,), x=features, reject_outside_prior=False, show_progress_bars=False
        )  # (P, N, D)
    low, high = simulator.bounds(raw.device)
    return ((raw >= low) & (raw <= high)).all(-1).float().mean(0)


@torch.no_grad()
def sample_truncated(
    posterior: Any, simulator: Simulator, features: Tensor, count: int, *, seed: int
) -> Tensor:
    """``count`` draws per problem ``(N, count, D)`` of the posterior truncated to the prior box:
    sbi's rejection where the box holds at least ``MIN_INSIDE / PROBE_DRAWS`` of the mass, the
    unrejected draws projected onto the box elsewhere (module docstring, "Leakage")."""
    mass = inside_mass(posterior, simulator, features, seed=seed)
    sampleable = mass * PROBE_DRAWS >= MIN_INSIDE
    with _forked(features.device):
        torch.manual_seed(derive_seed(seed, "npe-draws", simulator.name))
        if bool(sampleable.all()):  # the usual case: one call, as before the check
            return posterior.sample_batched(
                (count,), x=features, show_progress_bars=False
            ).transpose(0, 1)
        leaked = (~sampleable).nonzero().flatten()
        log.warning(
            "NPE (%s): %d of %d problems keep under %.1e of their mass inside the prior box "
            "(problems %s, masses %s); their draws are projected onto the box",
            simulator.name,
            len(leaked),
            len(mass),
            MIN_INSIDE / PROBE_DRAWS,
            leaked.tolist()[:10],
            [round(float(m), 5) for m in mass[leaked][:10]],
        )
        samples = torch.empty(
            len(mass), count, simulator.theta_dim, device=features.device, dtype=features.dtype
        )
        if bool(sampleable.any()):
            samples[sampleable] = posterior.sample_batched(
                (count,), x=features[sampleable], show_progress_bars=False
            ).transpose(0, 1)
        raw = posterior.sample_batched(
            (count,), x=features[leaked], reject_outside_prior=False, show_progress_bars=False
        ).transpose(0, 1)
        samples[leaked] = simulator.clamp(raw.to(samples.dtype))
    return samples
