"""Training-speed benchmarks: simulator throughput, the meta-training step, batched ensembles.

1. ``throughput`` (:func:`bench_throughput`) — simulated observations per second at the shapes
   training uses.
2. ``step`` (:func:`bench_step`) — meta-training step time at the paper's hyper-parameters,
   split into simulate, forward (the unroll minus simulation) and backward + optimiser step;
   median and quartiles.
3. ``ensemble`` (:func:`bench_ensemble`) — the step of a batched ensemble of ``G`` models
   (:mod:`alfi.ensemble_step`) against one model's, per model, eager and (on CUDA) replayed
   from a CUDA graph (:mod:`alfi.cuda_graph`), and the paper grid's projected hours at each
   ``G``.

Each row carries peak memory (:func:`alfi.bench_harness.peak_mib`).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from alfi.bench_harness import (
    TimedSimulator,
    measure,
    paper_config,
    paper_settings,
    peak_mib,
    reset_peak,
    sync,
)
from alfi.columns import MAIN_VARIANT
from alfi.config import settings_for
from alfi.data import make_dataset, make_generator
from alfi.io import MetaDataset
from alfi.meta_step import apply_gradients, batch_loss
from alfi.schedule import total_steps, unrolled_updates
from alfi.simulators import Simulator, get_simulator
from alfi.stages import variants_for
from alfi.train import build_model

__all__ = ["bench_throughput", "bench_step", "bench_ensemble"]


def bench_throughput(name: str, device: torch.device, repeats: int = 20) -> dict[str, Any]:
    """Observations per second of ``name``'s ``simulate`` at training's (meta-batch, B, M)."""
    sim, cfg = get_simulator(name), paper_settings(name)["train"]
    shape = (cfg["meta_batch"], cfg["n_theta"])
    generator = make_generator(0, device)
    theta = sim.sample_prior(shape, generator)
    sim.simulate(theta, cfg["n_sim"], generator)
    with measure(device) as m:
        for _ in range(repeats):
            sim.simulate(theta, cfg["n_sim"], generator)
    return {
        "simulator": name,
        "observations_per_s": repeats * shape[0] * shape[1] * cfg["n_sim"] / m["seconds"],
        "shape": f"{shape[0]}x{shape[1]}x{cfg['n_sim']}",
        "peak_mib": m["peak_mib"],
    }


def bench_step(name: str, device: torch.device, steps: int = 30, warmup: int = 5) -> dict:
    """Median and quartiles of the meta-training step (:func:`alfi.meta_step.training_step`'s two
    halves: :func:`~alfi.meta_step.batch_loss`, :func:`~alfi.meta_step.apply_gradients`) on random
    meta-batches, split into simulate, forward (the loss minus simulation) and backward + step."""
    sim = get_simulator(name)
    settings = paper_settings(name)
    cfg = settings["train"]
    data = make_dataset(sim, 256, settings["dataset"]["n_real"], seed=1, device=str(device))
    model = build_model(sim, settings, data).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    timed = TimedSimulator(sim, device)
    generator = make_generator(2, device)
    theta_all = model.standardise_theta(data.theta.to(device))
    x_all = data.x.to(device)
    rows = []
    reset_peak(device)
    for i in range(warmup + steps):
        index = torch.randint(
            0, len(data), (cfg["meta_batch"],), device=device, generator=generator
        )
        timed.seconds = 0.0
        sync(device)
        start = time.perf_counter()
        loss = batch_loss(
            model, timed, x_all[index], theta_all[index], cfg=cfg, generator=generator
        )
        sync(device)
        middle = time.perf_counter()
        apply_gradients(model, optimiser, loss, cfg["grad_clip"])
        sync(device)
        end = time.perf_counter()
        if i >= warmup:
            rows.append((end - start, timed.seconds, middle - start - timed.seconds, end - middle))
    total, simulate, forward, backward = (sorted(c) for c in zip(*rows, strict=True))
    quartiles = statistics.quantiles(total, n=4)
    return {
        "simulator": name,
        "steps": steps,
        "step_ms_median": 1e3 * statistics.median(total),
        "step_ms_q1": 1e3 * quartiles[0],
        "step_ms_q3": 1e3 * quartiles[2],
        "simulate_ms": 1e3 * statistics.median(simulate),
        "forward_ms": 1e3 * statistics.median(forward),
        "backward_step_ms": 1e3 * statistics.median(backward),
        "peak_mib": peak_mib(device),
    }


def bench_ensemble(
    name: str,
    device: torch.device,
    sizes: tuple[int, ...] = (1, 6, 18),
    steps: int = 20,
    warmup: int = 3,
) -> list[dict[str, Any]]:
    """Median step time of ensembles of ``sizes`` models at the paper's hyper-parameters
    (:func:`alfi.ensemble_step.ensemble_stepper`; ``G = 1`` is :func:`alfi.meta_step.stepper`),
    eager and, on CUDA, with each step's gradients replayed from a CUDA graph; per model and
    relative to one eager model, and the projected hours of this simulator's models of the paper
    grid (``configs/paper.yaml``: variants x seeds, each its epochs of steps) at that ``G``."""
    sim = get_simulator(name)
    settings = paper_settings(name)
    grid_models, grid_steps, grid_model_steps = _grid_work(name)
    data = make_dataset(sim, 256, settings["dataset"]["n_real"], seed=1, device=str(device))
    modes = (False, True) if device.type == "cuda" else (False,)
    rows, single_ms = [], None
    for size in sizes:
        for graphed in modes:
            reset_peak(device)
            step_ms = _ensemble_step_ms(sim, settings, data, device, size, graphed, steps, warmup)
            single_ms = single_ms or step_ms  # sizes start with 1, eager first
            per_model = step_ms / size
            rows.append(
                {
                    "simulator": name,
                    "group_size": size,
                    "cuda_graph": graphed,
                    "step_ms_median": step_ms,
                    "per_model_ms": per_model,
                    "per_model_vs_single": per_model / single_ms,
                    "grid_models": grid_models,
                    "grid_steps_per_model": grid_steps,
                    "grid_hours": grid_model_steps * per_model / 3.6e6,
                    "peak_mib": peak_mib(device),
                }
            )
    return rows


def _grid_work(name: str) -> tuple[int, int, float]:
    """The paper grid's models of ``name``, the main variant's training steps per model, and
    the grid's training work in main-variant steps: each variant's models x steps, scaled by
    its unrolled updates over the main variant's (``variant_overrides`` may change either)."""
    config = paper_config()
    main = settings_for(config, name, MAIN_VARIANT)
    main_steps = total_steps(main, main["dataset"]["n_train"])[1]
    main_unroll = unrolled_updates(main["train"], main_steps, main_steps) / main_steps
    work = 0.0
    for variant in variants_for(config, name):
        grid = settings_for(config, name, variant)
        steps = total_steps(grid, grid["dataset"]["n_train"])[1]
        work += len(config["seeds"]) * unrolled_updates(grid["train"], steps, steps) / main_unroll
    models = len(config["seeds"]) * len(variants_for(config, name))
    return models, main_steps, work


def _ensemble_step_ms(
    sim: Simulator,
    settings: dict[str, Any],
    data: MetaDataset,
    device: torch.device,
    size: int,
    graphed: bool,
    steps: int,
    warmup: int,
) -> float:
    """Median milliseconds of one step of ``size`` fresh models (one: a model alone)."""
    from alfi.ensemble import Ensemble
    from alfi.ensemble_step import ensemble_stepper
    from alfi.meta_step import stepper

    cfg = settings["train"]
    members = [("nll-exp", seed) for seed in range(size)]
    models = [build_model(sim, settings, data).to(device) for _ in members]
    generators = [make_generator(seed, device) for _, seed in members]
    theta_all = models[0].standardise_theta(data.theta.to(device))
    x_all = data.x.to(device)
    if size == 1:
        optimiser = torch.optim.Adam(models[0].parameters(), lr=cfg["lr"])
        one = stepper(
            models[0], optimiser, sim, cfg=cfg, generator=generators[0], cuda_graph=graphed
        )

        def run(index: torch.Tensor, step: int) -> torch.Tensor:
            return one(x_all[index[0]], theta_all[index[0]], step=step)

    else:
        ensemble = Ensemble(models)
        optimiser = torch.optim.Adam(ensemble.parameters(), lr=cfg["lr"])
        run_all = ensemble_stepper(
            ensemble,
            optimiser,
            sim,
            cfg=cfg,
            generators=generators,
            members=members,
            cuda_graph=graphed,
        )

        def run(index: torch.Tensor, step: int) -> torch.Tensor:
            return run_all(x_all[index], theta_all[index], step=step)

    times = []
    for i in range(warmup + steps):
        index = torch.randint(
            0, len(data), (size, cfg["meta_batch"]), device=device, generator=generators[0]
        )
        sync(device)
        start = time.perf_counter()
        run(index, i)
        sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)
