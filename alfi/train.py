r"""Meta-training: Adam on :math:`\sum_t w_t \ell(\psi_{t+1}, \theta^*)` over a stored meta-dataset.

An epoch visits every :math:`\theta^*` of the meta-dataset once, in meta-batches. Each problem's
initial proposal mean is drawn afresh from the prior at every visit (Appendix A). Training is
resumable: a checkpoint holds weights, optimiser, the simulation RNG state and the step, and the
epoch order is a function of (seed, epoch), so a run restarted from its checkpoint ends with the
same weights as one that never stopped.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from alfi import proposal
from alfi.config import derive_seed, parse_variant
from alfi.io import InputError, MetaDataset, load_torch, save_torch
from alfi.losses import meta_loss
from alfi.model import ALFI, ModelConfig
from alfi.simulators import Simulator

__all__ = ["NonFiniteLossError", "TrainResult", "build_model", "train", "load_model"]

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The meta-loss became NaN or infinite; the weights of the step before are kept."""


@dataclass
class TrainResult:
    model: ALFI
    history: list[dict[str, float]] = field(default_factory=list)
    steps_done: int = 0


def observation_statistics(simulator: Simulator, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Mean and std of preprocessed observations ``(N, M, X)`` per coordinate; a constant
    coordinate (std 0, like linear regression's column of ones) keeps std 1."""
    flat = simulator.preprocess(x.double()).reshape(-1, x.shape[-1])
    mean, std = flat.mean(0), flat.std(0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return mean.float(), std.float()


def build_model(simulator: Simulator, settings: dict[str, Any], data: MetaDataset) -> ALFI:
    config = ModelConfig(
        theta_dim=simulator.theta_dim,
        observation_dim=simulator.observation_dim,
        clip=settings["train"]["clip"],
        **settings["model"],
    )
    model = ALFI(config)
    theta_mean, theta_std = simulator.prior_moments()
    model.set_normalisation(theta_mean, theta_std, *observation_statistics(simulator, data.x))
    return model


def _total_steps(settings: dict[str, Any], n_problems: int) -> tuple[int, int]:
    per_epoch = math.ceil(n_problems / settings["train"]["meta_batch"])
    return per_epoch, max(1, round(settings["train"]["epochs"] * per_epoch))


@functools.lru_cache(maxsize=2)
def _epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The visiting order of epoch ``epoch``: a function of (seed, epoch), drawn once per epoch."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, epoch)))


def _batch_indices(seed: int, step: int, per_epoch: int, n: int, batch: int) -> torch.Tensor:
    epoch, position = divmod(step, per_epoch)
    return _epoch_order(seed, epoch, n)[position * batch : (position + 1) * batch]


def _checkpoint(model, optimiser, generator, step, settings, variant, seed, history) -> dict:
    return {
        "model": model.state_dict(),
        "model_config": model.config.to_dict(),
        "optimiser": optimiser.state_dict(),
        "generator": generator.get_state(),
        "step": step,
        "settings": settings,
        "variant": variant,
        "seed": seed,
        "history": history,
    }


def train(
    simulator: Simulator,
    data: MetaDataset,
    settings: dict[str, Any],
    variant: str,
    seed: int,
    device: torch.device,
    checkpoint: Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainResult:
    """Meta-train ALFI; resume from ``checkpoint`` if it exists, and save to it periodically.

    ``stop_after`` ends the run after that many total steps (as if the job were killed right
    after a checkpoint); used to test resumption.
    """
    loss_kind, weighting = parse_variant(variant)
    cfg = settings["train"]
    with torch.random.fork_rng(devices=[]):  # weights drawn from the run's seed, not global state
        torch.manual_seed(derive_seed(seed, "init", simulator.name, variant))
        model = build_model(simulator, settings, data).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, "train", simulator.name, variant))
    step, history = 0, []
    if checkpoint is not None and Path(checkpoint).is_file():
        state = load_torch(checkpoint, map_location=device)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        generator.set_state(state["generator"].cpu())
        step, history = state["step"], list(state["history"])
        log.info("resumed from %s at step %d", checkpoint, step)

    theta_all = model.standardise_theta(data.theta.to(device))
    x_all = data.x.to(device)
    per_epoch, total = _total_steps(settings, len(data))
    last = total if stop_after is None else min(total, stop_after)
    bar = tqdm(
        total=total,
        initial=step,
        disable=not progress,
        desc=f"{simulator.name} {variant}",
        mininterval=2.0,
        unit="step",
    )
    start = time.perf_counter()
    while step < last:
        index = _batch_indices(seed, step, per_epoch, len(data), cfg["meta_batch"]).to(device)
        psi = proposal.initial(
            (index.numel(),), simulator.theta_dim, generator, cfg["initial_log_scale"]
        )
        trajectory = model.unroll(
            simulator, x_all[index], psi, cfg["steps"], cfg["n_theta"], cfg["n_sim"], generator
        )
        loss = meta_loss(trajectory, theta_all[index], loss_kind, weighting, cfg["beta"])
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"meta-loss is {loss.item()} at step {step} ({simulator.name}, {variant}); "
                "lower train.lr or set train.grad_clip"
            )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if cfg["grad_clip"] is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        optimiser.step()
        step += 1
        bar.update(1)
        if step % 50 == 0 or step == last:
            history.append(
                {"step": step, "loss": loss.item(), "seconds": time.perf_counter() - start}
            )
            bar.set_postfix(loss=f"{history[-1]['loss']:.3f}")
        if checkpoint is not None and (step % cfg["checkpoint_every"] == 0 or step == last):
            save_torch(
                checkpoint,
                _checkpoint(model, optimiser, generator, step, settings, variant, seed, history),
            )
    bar.close()
    return TrainResult(model=model, history=history, steps_done=step)


def save_model(
    path: Path,
    model: ALFI,
    simulator: Simulator,
    settings: dict,
    variant: str,
    seed: int,
    history: list[dict[str, float]],
) -> None:
    """The trained model: weights, sizes, normalisation (in the weights) and its provenance."""
    save_torch(
        path,
        {
            "model": {k: v.cpu() for k, v in model.state_dict().items()},
            "model_config": model.config.to_dict(),
            "simulator": simulator.name,
            "settings": settings,
            "variant": variant,
            "seed": seed,
            "history": history,
        },
    )


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[ALFI, dict[str, Any]]:
    state = load_torch(path, map_location=device)
    try:
        model = ALFI(ModelConfig(**state["model_config"])).to(device)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{path} does not hold weights of this ALFI version: {first}") from None
    model.eval()
    return model, state
