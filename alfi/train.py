r"""Meta-training: Adam on :math:`\sum_t w_t \ell(\psi_{t+1}, \theta^*)` over a meta-dataset.

An epoch visits every :math:`\theta^*` of the meta-dataset once, in meta-batches. Each problem's
initial proposal mean is drawn afresh from the prior at every visit (Appendix A). With
``train.fresh_problems`` every meta-batch is instead a batch of problems never seen before,
:math:`\theta^* \sim p(\theta)` and its real observations drawn for that step
(:func:`fresh_problems`): the same number of steps and batch sizes as the epochs over the stored
problems, which then only set the observations' normalisation. Training is
resumable: a checkpoint holds weights, optimiser, the simulation RNG state and the step, and the
epoch order is a function of (seed, epoch), so a run restarted from its checkpoint ends with the
same weights as one that never stopped.

A checkpoint is resumed only if it was made from the same inputs: its provenance record
(:func:`training_record`: simulator, variant, seed, model and training settings, the data's
content digest, device type and the training code) must have the fingerprint the current run
would write. Any other checkpoint, or one that cannot be read (a job killed mid-write, say), is
set aside beside it (``NAME.set-aside-TIME``) with one log line saying why, and training starts
afresh.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from alfi import proposal
from alfi.config import parse_variant, validate_settings
from alfi.cuda_graph import training_stepper
from alfi.data import check_simulation, probe_simulation
from alfi.io import InputError, MetaDataset, check_dataset, load_torch, save_torch
from alfi.losses import meta_loss
from alfi.model import ALFI, ModelConfig
from alfi.model import squash as squash_kind
from alfi.provenance import code_digest, differences, digest, source_files
from alfi.seeds import derive_seed
from alfi.simulators import Simulator

__all__ = [
    "NonFiniteLossError",
    "TrainResult",
    "build_model",
    "initial_model",
    "training_generator",
    "training_record",
    "learning_rate",
    "fresh_observations",
    "fresh_problems",
    "training_batch",
    "unroll_length",
    "batch_loss",
    "apply_gradients",
    "training_step",
    "stepper",
    "train",
    "save_model",
    "load_model",
]

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The meta-loss became NaN or infinite; the weights of the step before are kept."""


@dataclass
class TrainResult:
    model: ALFI
    history: list[dict[str, float]] = field(default_factory=list)
    steps_done: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)


def observation_statistics(
    simulator: Simulator, x: torch.Tensor, squash: str = "none"
) -> tuple[torch.Tensor, ...]:
    """Mean and std of preprocessed (and, with ``squash="asinh"``, squashed) observations
    ``(N, M, X)`` per coordinate; a constant coordinate (std 0, like linear regression's column
    of ones) keeps std 1."""
    flat = squash_kind(simulator.preprocess(x.double()), squash).reshape(-1, x.shape[-1])
    mean, std = flat.mean(0), flat.std(0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return mean.float(), std.float()


def build_model(simulator: Simulator, settings: dict[str, Any], data: MetaDataset) -> ALFI:
    config = ModelConfig(
        theta_dim=simulator.theta_dim,
        observation_dim=simulator.observation_dim,
        clip=settings["train"]["clip"],
        clip_scale=settings["train"].get("clip_scale"),
        **settings["model"],
    )
    model = ALFI(config)
    theta_mean, theta_std = simulator.prior_moments()
    statistics = observation_statistics(simulator, data.x, config.squash)
    model.set_normalisation(theta_mean, theta_std, *statistics)
    return model


def learning_rate(cfg: dict[str, Any], step: int, total: int) -> float:
    """The learning rate of optimiser step ``step`` (0-based) of ``total``: ``lr`` after a linear
    warm-up over the first ``warmup`` fraction of the steps, then constant or, with
    ``lr_schedule: cosine``, a half cosine down to 0 at ``total``. A function of the step alone,
    so a resumed run uses the same rates."""
    schedule, warmup = cfg.get("lr_schedule", "constant"), cfg.get("warmup", 0.0)
    factor = 1.0
    warm_steps = warmup * total
    if warm_steps > 0 and step < warm_steps:
        factor = (step + 1) / math.ceil(warm_steps)
    elif schedule == "cosine":
        progress = (step - warm_steps) / max(1.0, total - warm_steps)
        factor = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return cfg["lr"] * factor


def _step_generator(
    kind: str, seed: int, name: str, step: int, device: torch.device
) -> torch.Generator:
    """A generator of its own for what training step ``step`` draws afresh (``kind``), seeded
    by (seed, kind, ``name``: simulator and variant, step): no checkpoint needs to carry it."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, kind, name, step))
    return generator


def fresh_observations(
    simulator: Simulator, theta: torch.Tensor, n: int, seed: int, step: int, name: str
) -> torch.Tensor:
    """New real observations ``(P, n, X)`` of the raw ``theta`` ``(P, D)`` for training step
    ``step``: drawn from a generator seeded by (seed, simulator, variant, step), so they differ
    between visits and are the same on a resumed run."""
    generator = _step_generator("real", seed, name, step, theta.device)
    return simulator.simulate(theta, n, generator).float()


def fresh_problems(
    simulator: Simulator, size: int, n: int, seed: int, step: int, name: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``size`` new problems for training step ``step``: raw :math:`\theta^* \sim p(\theta)`
    ``(size, D)`` and ``n`` real observations of each ``(size, n, X)``, drawn on ``device`` from
    a generator seeded by (seed, simulator, variant, step), so no two steps share a problem and a
    resumed run draws the same ones."""
    generator = _step_generator("problems", seed, name, step, device)
    theta = simulator.sample_prior((size,), generator)
    return theta, simulator.simulate(theta, n, generator).float()


def training_batch(
    simulator: Simulator,
    cfg: dict[str, Any],
    theta_raw: torch.Tensor,
    x_all: torch.Tensor,
    index: torch.Tensor,
    *,
    seed: int,
    step: int,
    name: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw ``(theta*, x_real)`` of training step ``step``: the stored problems ``index`` ``(P,)``
    of ``theta_raw`` ``(N, D)`` and ``x_all`` ``(N, M_r, X)``; with ``cfg["fresh_real"]`` their
    observations drawn anew (:func:`fresh_observations`); with ``cfg["fresh_problems"]`` ``P``
    new problems (:func:`fresh_problems`). ``name`` (simulator and variant) keys the draws."""
    if cfg.get("fresh_problems", False):
        return fresh_problems(
            simulator, index.numel(), x_all.shape[1], seed, step, name, x_all.device
        )
    theta = theta_raw[index]
    if cfg.get("fresh_real", False):
        return theta, fresh_observations(simulator, theta, x_all.shape[1], seed, step, name)
    return theta, x_all[index]


def _total_steps(settings: dict[str, Any], n_problems: int) -> tuple[int, int]:
    per_epoch = math.ceil(n_problems / settings["train"]["meta_batch"])
    return per_epoch, max(1, round(settings["train"]["epochs"] * per_epoch))


def _schedule(
    settings: dict[str, Any], n_problems: int, stop_after: int | None
) -> tuple[int, int, int]:
    """Steps per epoch, steps in all, and the step a run ends at (``stop_after``, if sooner)."""
    per_epoch, total = _total_steps(settings, n_problems)
    return per_epoch, total, total if stop_after is None else min(total, stop_after)


#: Steps between two entries of a run's loss history.
HISTORY_EVERY = 50


def _progress_bar(total: int, step: int, desc: str, progress: bool) -> tqdm:
    """A training run's progress bar, from ``step`` of ``total`` (hidden unless ``progress``)."""
    return tqdm(
        total=total, initial=step, disable=not progress, desc=desc, mininterval=2.0, unit="step"
    )


@functools.lru_cache(maxsize=2)
def _epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The visiting order of epoch ``epoch``: a function of (seed, epoch), drawn once per epoch."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, epoch)))


def _batch_indices(seed: int, step: int, per_epoch: int, n: int, batch: int) -> torch.Tensor:
    epoch, position = divmod(step, per_epoch)
    return _epoch_order(seed, epoch, n)[position * batch : (position + 1) * batch]


#: Settings added later, with the default that reproduces the behaviour from before them.
LATER_OPTIONS = {
    "model": {"pooling": "mean", "bound_mean": False, "squash": "none", "score_gradient": "full"},
    "train": {
        "fresh_real": False,
        "fresh_problems": False,
        "lr_schedule": "constant",
        "warmup": 0,
        "tail_steps": 0,
        "tail_weight": 1.0,
        "clip_scale": None,
    },
}


def _recorded(section: dict[str, Any], name: str) -> dict[str, Any]:
    later = LATER_OPTIONS[name]
    return {k: v for k, v in section.items() if not (k in later and v == later[k])}


def training_record(
    simulator: Simulator,
    data: MetaDataset,
    settings: dict[str, Any],
    variant: str,
    seed: int,
    device: torch.device | str,
    group: Sequence[tuple[str, int]] = (),
) -> dict[str, Any]:
    """What a trained model depends on: its provenance record (see :mod:`alfi.provenance`).

    How often checkpoints are written is left out: it does not change the weights. Options added
    after a record format was fixed (:data:`LATER_OPTIONS`) are recorded only when they differ
    from their default, which is today's behaviour: a checkpoint made before they existed keeps
    its fingerprint, and any run that turns one on gets another. ``group``, the ``(variant,
    seed)`` members of the ensemble it trains in (:mod:`alfi.train_ensemble`), is recorded when
    it has more than one: batched kernels round differently from a model's own.
    """
    train = _recorded(settings["train"], "train")
    train.pop("checkpoint_every", None)
    together = {"ensemble": [[v, int(s)] for v, s in group]} if len(group) > 1 else {}
    return {
        **together,
        "kind": "train",
        "simulator": simulator.name,
        "variant": variant,
        "seed": seed,
        "settings": {"model": _recorded(settings["model"], "model"), "train": train},
        "data": data.fingerprint,
        "device": torch.device(device).type,
        "code": code_digest(source_files(simulator, "train")),
    }


def _set_aside(path: Path, reason: str) -> None:
    aside = path.with_name(f"{path.name}.set-aside-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, aside)
    log.warning("set aside checkpoint %s as %s: %s; training starts afresh", path, aside, reason)


def _resumable(checkpoint: Path | None, record: dict, device: torch.device) -> dict | None:
    """The checkpoint's state if it was made from ``record``'s inputs; else set it aside."""
    if checkpoint is None or not Path(checkpoint).is_file():
        return None
    path = Path(checkpoint)
    try:
        state = load_torch(path, map_location=device)
    except InputError as exc:
        _set_aside(path, f"unreadable ({exc})")
        return None
    provenance = state.get("provenance") if isinstance(state, dict) else None
    if not provenance:
        _set_aside(path, "it records no provenance (written by an older alfi)")
        return None
    if not {"optimiser", "generator", "step"} <= state.keys():
        # A trained model records the same provenance; setting it aside would move the user's
        # model, resuming from it would fail half-way: stop before any work.
        raise InputError(
            f"{path} is a trained model (save_model, `alfi train --out`), not a training "
            "checkpoint; expected a checkpoint path of its own (a new file is fine)"
        )
    if provenance.get("fingerprint") != digest(record):
        change = differences(provenance.get("record", {}), record)
        _set_aside(path, f"it was made from other inputs ({change})")
        return None
    return state


_REMEDY = (
    "lower train.lr, set train.grad_clip, shorten train.tail_steps (for this variant alone: "
    "variant_overrides), or set model.score_gradient: none"
)


def _diagnose_non_finite(
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
        return NonFiniteLossError(
            f"{where}: the proposal became non-finite (the weights diverged) although the "
            f"simulator returns finite data; {_REMEDY}"
        )
    return NonFiniteLossError(
        f"{where} although the simulator returns finite data on the visited parameters; " + _REMEDY
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


def _proposal_diverged(
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
                steps=unroll_length(cfg),
                n_theta=cfg["n_theta"],
                n_sim=cfg["n_sim"],
                generator=generator,
            )
    except _NonFiniteParameters:
        return True
    except RuntimeError:
        return False
    return False


def _diverged(step: int, run: str, error: Exception) -> NonFiniteLossError:
    """The error of a run (``"poisson, nll-exp"``) whose weights diverged so far that the
    simulator refused the parameters the proposal gave it."""
    return NonFiniteLossError(
        f"the proposal became non-finite at step {step} ({run}): the weights diverged, and the "
        f"simulator refused the parameters ({error}); {_REMEDY}"
    )


def unroll_length(cfg: dict[str, Any]) -> int:
    """Updates unrolled per training step: the horizon ``steps`` plus ``tail_steps`` past it."""
    return cfg["steps"] + cfg.get("tail_steps", 0)


def variant_loss(
    trajectory: torch.Tensor, theta: torch.Tensor, variant: str, cfg: dict[str, Any]
) -> torch.Tensor:
    """:func:`alfi.losses.meta_loss` of ``variant`` (``LOSS-WEIGHTING``) under the training
    settings ``cfg`` (``beta``, ``tail_steps``, ``tail_weight``)."""
    loss_kind, weighting = parse_variant(variant)
    tail, tail_weight = cfg.get("tail_steps", 0), cfg.get("tail_weight", 1.0)
    return meta_loss(trajectory, theta, loss_kind, weighting, cfg["beta"], tail, tail_weight)


def _initial_proposals(
    x_real: torch.Tensor, simulator: Simulator, cfg: dict[str, Any], generator: torch.Generator
) -> torch.Tensor:
    r""":math:`\psi_1` ``(P, 2D)`` for the ``P`` problems of ``x_real`` (one draw)."""
    return proposal.initial(
        (x_real.shape[0],), simulator.theta_dim, generator, cfg["initial_log_scale"]
    )


def _unrolled_loss(
    model: ALFI,
    simulator: Simulator,
    x_real: torch.Tensor,
    psi: torch.Tensor,
    theta: torch.Tensor,
    cfg: dict[str, Any],
    generator: torch.Generator,
    variant: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The unroll from ``psi`` and its meta-loss, unchecked: ``(loss, trajectory)``."""
    trajectory = model.unroll(
        simulator,
        x_real,
        psi,
        steps=unroll_length(cfg),
        n_theta=cfg["n_theta"],
        n_sim=cfg["n_sim"],
        generator=generator,
    )
    return variant_loss(trajectory, theta, variant, cfg), trajectory


def batch_loss(
    model: ALFI,
    simulator: Simulator,
    x_real: torch.Tensor,
    theta: torch.Tensor,
    *,
    cfg: dict[str, Any],
    generator: torch.Generator,
    variant: str = "nll-exp",
    seed: int = 0,
    step: int = 0,
) -> torch.Tensor:
    r"""The meta-loss of one meta-batch (the forward half of :func:`training_step`).

    Draws :math:`\psi_1` from the prior for each of the ``P`` problems (one draw of
    ``generator``), unrolls ``steps + tail_steps`` updates on the raw real data ``x_real``
    ``(P, M_r, X)`` (``generator`` again, for the proposal draws and simulations) and returns
    the scalar :math:`\sum_t w_t \ell(\psi_{t+1}, \theta^*)` against ``theta`` ``(P, D)``, the
    standardised :math:`\theta^*` (:meth:`ALFI.standardise_theta`). ``cfg`` holds the training
    settings (``steps``, ``tail_steps``, ``n_theta``, ``n_sim``, ``beta``,
    ``initial_log_scale``); ``variant`` is ``LOSS-WEIGHTING``.

    A loss that is not finite raises :class:`NonFiniteLossError` saying why (the simulator, a
    diverged proposal or the optimisation); ``seed`` and ``step`` name the step in that message
    and seed the diagnostic replays, which draw nothing from ``generator``.
    """
    parse_variant(variant)  # a bad variant is named before any simulation
    psi = _initial_proposals(x_real, simulator, cfg, generator)
    try:
        loss, trajectory = _unrolled_loss(
            model, simulator, x_real, psi, theta, cfg, generator, variant
        )
    except RuntimeError as exc:
        if not _proposal_diverged(model, simulator, x_real, psi, cfg, seed, step):
            raise
        raise _diverged(step, f"{simulator.name}, {variant}", exc) from None
    if not torch.isfinite(loss):
        raise _diagnose_non_finite(
            simulator,
            model.raw_theta(trajectory[..., : simulator.theta_dim]),
            cfg["n_sim"],
            seed,
            step,
            variant,
        )
    return loss


def apply_gradients(
    model: ALFI, optimiser: torch.optim.Optimizer, loss: torch.Tensor, grad_clip: float | None
) -> None:
    """The backward half of :func:`training_step`: gradients of ``loss``, their global L2 norm
    clipped to ``grad_clip`` (``None``: not clipped), one optimiser step."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimiser.step()


def training_step(
    model: ALFI,
    optimiser: torch.optim.Optimizer,
    simulator: Simulator,
    x_real: torch.Tensor,
    theta: torch.Tensor,
    *,
    cfg: dict[str, Any],
    generator: torch.Generator,
    variant: str = "nll-exp",
    seed: int = 0,
    step: int = 0,
) -> torch.Tensor:
    """One meta-training step on a meta-batch: :func:`batch_loss` then :func:`apply_gradients`
    (``cfg["grad_clip"]``). Returns the loss (a detached scalar tensor: reading it with
    ``.item()`` is the caller's choice, since it synchronises a GPU).

    ``x_real`` ``(P, M_r, X)`` raw real observations, ``theta`` ``(P, D)`` their standardised
    parameters; the learning rate is the optimiser's (:func:`train` sets it per step with
    :func:`learning_rate`). :func:`train` loops over this; so does ``alfi bench``.
    """
    loss = batch_loss(
        model,
        simulator,
        x_real,
        theta,
        cfg=cfg,
        generator=generator,
        variant=variant,
        seed=seed,
        step=step,
    )
    apply_gradients(model, optimiser, loss, cfg["grad_clip"])
    return loss.detach()


def stepper(
    model: ALFI,
    optimiser: torch.optim.Optimizer,
    simulator: Simulator,
    *,
    cfg: dict[str, Any],
    generator: torch.Generator,
    variant: str = "nll-exp",
    seed: int = 0,
    cuda_graph: bool = False,
) -> Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]:
    """:func:`training_step` as a function of ``(x_real, theta, step=)``. On CUDA with
    ``cuda_graph``, the loss and its clipped gradients are replayed from a CUDA graph
    (:func:`alfi.cuda_graph.training_stepper`), the loss is checked as :func:`batch_loss`
    checks it (a non-finite loss raises before the optimiser steps), and Adam steps eagerly:
    the eager step's draws and operations, one launch instead of a thousand."""

    def check(loss: torch.Tensor, means: torch.Tensor, *, step: int) -> None:
        if not torch.isfinite(loss):
            raw = model.raw_theta(means)
            raise _diagnose_non_finite(simulator, raw, cfg["n_sim"], seed, step, variant)

    return training_stepper(
        functools.partial(
            training_step,
            *(model, optimiser, simulator),
            cfg=cfg,
            generator=generator,
            variant=variant,
            seed=seed,
        ),
        functools.partial(_gradients, model, optimiser, simulator, cfg, generator, variant),
        [generator],
        check,
        optimiser,
        enabled=cuda_graph,
    )


def _gradients(
    model: ALFI,
    optimiser: torch.optim.Optimizer,
    simulator: Simulator,
    cfg: dict[str, Any],
    generator: torch.Generator,
    variant: str,
    x_real: torch.Tensor,
    theta: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The capturable half of a step: gradients zeroed in place, the loss, its clipped
    gradients; returns the detached loss and the trajectory's means ``(T + 1, P, D)``."""
    optimiser.zero_grad(set_to_none=False)
    psi = _initial_proposals(x_real, simulator, cfg, generator)
    loss, trajectory = _unrolled_loss(model, simulator, x_real, psi, theta, cfg, generator, variant)
    loss.backward()
    if cfg["grad_clip"] is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
    return loss.detach(), trajectory.detach()[..., : simulator.theta_dim]


def _checkpoint(
    model_state: dict[str, torch.Tensor],
    model_config: dict[str, Any],
    optimiser_state: dict[str, Any],
    generator_state: torch.Tensor,
    *,
    step: int,
    settings: dict[str, Any],
    variant: str,
    seed: int,
    history: list[dict[str, float]],
    provenance: dict[str, Any],
) -> dict:
    """What a checkpoint holds: enough to continue the run exactly where it stopped."""
    return {
        "provenance": provenance,
        "model": model_state,
        "model_config": model_config,
        "optimiser": optimiser_state,
        "generator": generator_state,
        "step": step,
        "settings": settings,
        "variant": variant,
        "seed": seed,
        "history": history,
    }


def initial_model(
    simulator: Simulator,
    data: MetaDataset,
    settings: dict[str, Any],
    *,
    variant: str,
    seed: int,
    device: torch.device | str,
) -> ALFI:
    """The untrained model of a run: weights drawn from the run's (seed, simulator, variant),
    not from the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "init", simulator.name, variant))
        return build_model(simulator, settings, data).to(device)


def training_generator(
    simulator: Simulator, *, variant: str, seed: int, device: torch.device | str
) -> torch.Generator:
    """The run's generator of every proposal draw and simulation."""
    generator = torch.Generator(device=device)
    return generator.manual_seed(derive_seed(seed, "train", simulator.name, variant))


def check_training_inputs(
    simulator: Simulator, data: MetaDataset, settings: dict[str, Any]
) -> None:
    """Before any work: the settings against the schema (a misspelt or out-of-range key is
    named, not ignored or met as a ``ZeroDivisionError``), the data made by ``simulator`` and
    one small batched simulation of it (:func:`alfi.data.probe_simulation`)."""
    validate_settings(settings)
    check_dataset(data, simulator, f"the training meta-dataset given for {simulator.name!r}")
    if len(data) == 0:
        raise InputError(f"the {simulator.name} meta-dataset holds no problems; expected >= 1")
    probe_simulation(simulator, settings["train"]["n_sim"])


def train(
    simulator: Simulator,
    data: MetaDataset,
    settings: dict[str, Any],
    *,
    variant: str = "nll-exp",
    seed: int = 0,
    device: torch.device | str = "cpu",
    checkpoint: Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    cuda_graph: bool = False,
) -> TrainResult:
    """Meta-train ALFI; resume from ``checkpoint`` if it exists, and save to it periodically.

    ``settings`` holds the ``model`` and ``train`` sections of one simulator's resolved settings
    (:func:`alfi.config.settings`); ``variant`` is ``LOSS-WEIGHTING``; ``seed`` fixes the initial
    weights, the visiting order and every draw. Each step is one :func:`training_step` on the
    meta-batch the epoch order gives. ``stop_after`` ends the run after that many total steps
    (as if the job were killed right after a checkpoint); used to test resumption. On CUDA,
    ``cuda_graph`` replays each step's gradients from a CUDA graph (:func:`stepper`).
    """
    parse_variant(variant)
    check_training_inputs(simulator, data, settings)
    cfg = settings["train"]
    record = training_record(simulator, data, settings, variant, seed, device)
    provenance = {"fingerprint": digest(record), "record": record}
    model = initial_model(simulator, data, settings, variant=variant, seed=seed, device=device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    generator = training_generator(simulator, variant=variant, seed=seed, device=device)
    step, history = 0, []
    state = _resumable(checkpoint, record, device)
    if state is not None:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        generator.set_state(state["generator"].cpu())
        step, history = state["step"], list(state["history"])
        log.info("resumed from %s at step %d", checkpoint, step)

    theta_raw, x_all = data.theta.to(device), data.x.to(device)
    name = f"{simulator.name} {variant}"
    run_step = stepper(
        model,
        optimiser,
        simulator,
        cfg=cfg,
        generator=generator,
        variant=variant,
        seed=seed,
        cuda_graph=cuda_graph,
    )
    per_epoch, total, last = _schedule(settings, len(data), stop_after)
    bar = _progress_bar(total, step, f"{simulator.name} {variant}", progress)
    start = time.perf_counter()
    while step < last:
        index = _batch_indices(seed, step, per_epoch, len(data), cfg["meta_batch"]).to(device)
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(cfg, step, total)
        theta, x_real = training_batch(
            simulator, cfg, theta_raw, x_all, index, seed=seed, step=step, name=name
        )
        loss = run_step(x_real, model.standardise_theta(theta), step=step)
        step += 1
        bar.update(1)
        if step % HISTORY_EVERY == 0 or step == last:
            history.append(
                {"step": step, "loss": loss.item(), "seconds": time.perf_counter() - start}
            )
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
        if checkpoint is not None and (step % cfg["checkpoint_every"] == 0 or step == last):
            save_torch(
                checkpoint,
                _checkpoint(
                    model.state_dict(),
                    model.config.to_dict(),
                    optimiser.state_dict(),
                    generator.get_state(),
                    step=step,
                    settings=settings,
                    variant=variant,
                    seed=seed,
                    history=history,
                    provenance=provenance,
                ),
            )
    bar.close()
    return TrainResult(model=model, history=history, steps_done=step, provenance=provenance)


#: What a model file holds besides the loss history and provenance (:func:`save_model`).
MODEL_KEYS = ("model", "model_config", "simulator", "settings", "variant", "seed")


def save_model(
    path: Path,
    model: ALFI,
    simulator: Simulator,
    settings: dict,
    *,
    variant: str,
    seed: int,
    history: list[dict[str, float]] | None = None,
    provenance: dict[str, Any] | None = None,
) -> None:
    """The trained model: weights, sizes, normalisation (in the weights), what it was trained
    with (``settings``, ``variant``, ``seed``, the loss ``history``) and its provenance; read
    back by :func:`load_model`."""
    save_torch(
        path,
        {
            "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "model_config": model.config.to_dict(),
            "simulator": simulator.name,
            "settings": settings,
            "variant": variant,
            "seed": seed,
            "history": history or [],
            "provenance": provenance or {},
        },
    )


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[ALFI, dict[str, Any]]:
    """A model written by :func:`save_model` (in eval mode, on ``device``) and everything saved
    with it (``simulator``, ``settings``, ``variant``, ``seed``, ``history``, ``provenance``)."""
    state = load_torch(path, map_location=device)
    if isinstance(state, dict) and "optimiser" in state and "simulator" not in state:
        raise InputError(
            f"{path} is a training checkpoint, not a model; expected the file `alfi train "
            "--out` (save_model) writes when training ends"
        )
    missing = [key for key in MODEL_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise InputError(
            f"{path} is not a model written by save_model (`alfi train --out`): it lacks "
            f"{', '.join(missing)}"
        )
    try:
        model = ALFI(ModelConfig(**state["model_config"])).to(device)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{path} does not hold weights of this ALFI version: {first}") from None
    model.eval()
    return model, state
