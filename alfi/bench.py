"""Benchmarks: ``alfi bench`` measures and writes Parquet tables under ``results/benchmarks/``.

1. ``throughput`` — simulated observations per second at the shapes training uses.
2. ``step`` — meta-training step time at the paper's hyper-parameters, split into simulate,
   forward (the unroll minus simulation) and backward + optimiser step; median and quartiles.
3. ``ensemble`` — the step of a batched ensemble of ``G`` models (:mod:`alfi.train_ensemble`)
   against one model's, per model, eager and (on CUDA) replayed from a CUDA graph
   (:mod:`alfi.cuda_graph`), and the paper grid's projected hours at each ``G``.
4. ``evaluate`` — paper-scale evaluation (K = 500 inits, T_test = 30): problems per second and
   the projected time for 500 problems.
5. ``accuracy`` — test RMSE against training wall-clock for Poisson (on θ) and Weinberg (on the
   identifiable a(θ)), the MLE's RMSE on the same problems beside it.

Each row carries peak memory: CUDA's peak allocation, or on CPU the process's peak resident set
(reset before each measurement through ``/proc/self/clear_refs`` where Linux allows).
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from alfi.columns import MAIN_VARIANT
from alfi.config import config_path, load_config, settings_for, variants_for
from alfi.data import make_dataset, make_generator, resolve_device
from alfi.evaluate import run_alfi, run_mle
from alfi.io import check_output, write_parquet
from alfi.schedule import total_steps, unroll_length
from alfi.seeds import derive_seed
from alfi.simulators import Simulator, get_simulator
from alfi.train import apply_gradients, batch_loss, build_model, train

PARTS = ("throughput", "step", "ensemble", "evaluate", "accuracy")

__all__ = ["PARTS", "paper_config", "paper_settings", "run_benchmarks", "run_from_args"]


@functools.cache
def paper_config() -> dict[str, Any]:
    """``configs/paper.yaml``, validated: the simulators and Appendix B settings benchmarked."""
    return load_config(config_path("paper"))


def paper_settings(name: str) -> dict[str, Any]:
    """The settings of ``name`` at the paper's hyper-parameters (T, meta-batch, B, M, clip, lr,
    500 real observations, K = 500), resolved from ``configs/paper.yaml`` as the workflow
    resolves them; then the benchmark's own: one epoch (``bench_accuracy`` sets the length it
    needs), no checkpoints, no histogram samples."""
    settings = settings_for(paper_config(), name, MAIN_VARIANT)  # a fresh copy
    settings["train"] |= {"epochs": 1, "checkpoint_every": 10**9}
    settings["evaluate"]["histograms"] = 0
    return settings


def _grid_work(name: str) -> tuple[int, int, float]:
    """The paper grid's models of ``name``, the main variant's training steps per model, and
    the grid's training work in main-variant steps: each variant's models x steps, scaled by
    its unrolled updates over the main variant's (``variant_overrides`` may change either)."""
    config = paper_config()
    main = settings_for(config, name, MAIN_VARIANT)
    work = 0.0
    for variant in variants_for(config, name):
        grid = settings_for(config, name, variant)
        steps = total_steps(grid, grid["dataset"]["n_train"])[1]
        ratio = unroll_length(grid["train"]) / unroll_length(main["train"])
        work += len(config["seeds"]) * steps * ratio
    models = len(config["seeds"]) * len(variants_for(config, name))
    return models, total_steps(main, main["dataset"]["n_train"])[1], work


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:  # not Linux, or not allowed: the peak is then the process's so far
            pass


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _TimedSimulator:
    """Wraps a simulator and accumulates the wall time spent in ``simulate``."""

    def __init__(self, simulator: Simulator, device: torch.device) -> None:
        self.inner, self.device, self.seconds = simulator, device, 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def simulate(self, theta, n, generator):
        _sync(self.device)
        start = time.perf_counter()
        out = self.inner.simulate(theta, n, generator)
        _sync(self.device)
        self.seconds += time.perf_counter() - start
        return out


@contextmanager
def _measure(device: torch.device):
    _reset_peak(device)
    _sync(device)
    box = {"start": time.perf_counter()}
    yield box
    _sync(device)
    box["seconds"] = time.perf_counter() - box["start"]
    box["peak_mib"] = _peak_mib(device)


def bench_throughput(name: str, device: torch.device, repeats: int = 20) -> dict[str, Any]:
    sim, cfg = get_simulator(name), paper_settings(name)["train"]
    shape = (cfg["meta_batch"], cfg["n_theta"])
    generator = make_generator(0, device)
    theta = sim.sample_prior(shape, generator)
    sim.simulate(theta, cfg["n_sim"], generator)
    with _measure(device) as m:
        for _ in range(repeats):
            sim.simulate(theta, cfg["n_sim"], generator)
    return {
        "simulator": name,
        "observations_per_s": repeats * shape[0] * shape[1] * cfg["n_sim"] / m["seconds"],
        "shape": f"{shape[0]}x{shape[1]}x{cfg['n_sim']}",
        "peak_mib": m["peak_mib"],
    }


def bench_step(name: str, device: torch.device, steps: int = 30, warmup: int = 5) -> dict:
    """Median and quartiles of the meta-training step (:func:`alfi.train.training_step`'s two
    halves: :func:`~alfi.train.batch_loss`, :func:`~alfi.train.apply_gradients`) on random
    meta-batches, split into simulate, forward (the loss minus simulation) and backward + step."""
    sim = get_simulator(name)
    settings = paper_settings(name)
    cfg = settings["train"]
    data = make_dataset(sim, 256, settings["dataset"]["n_real"], seed=1, device=str(device))
    model = build_model(sim, settings, data).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    timed = _TimedSimulator(sim, device)
    generator = make_generator(2, device)
    theta_all = model.standardise_theta(data.theta.to(device))
    x_all = data.x.to(device)
    rows = []
    _reset_peak(device)
    for i in range(warmup + steps):
        index = torch.randint(
            0, len(data), (cfg["meta_batch"],), device=device, generator=generator
        )
        timed.seconds = 0.0
        _sync(device)
        start = time.perf_counter()
        loss = batch_loss(
            model, timed, x_all[index], theta_all[index], cfg=cfg, generator=generator
        )
        _sync(device)
        middle = time.perf_counter()
        apply_gradients(model, optimiser, loss, cfg["grad_clip"])
        _sync(device)
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
        "peak_mib": _peak_mib(device),
    }


def bench_ensemble(
    name: str,
    device: torch.device,
    sizes: tuple[int, ...] = (1, 6, 18),
    steps: int = 20,
    warmup: int = 3,
) -> list[dict[str, Any]]:
    """Median step time of ensembles of ``sizes`` models at the paper's hyper-parameters
    (:func:`alfi.train_ensemble.ensemble_stepper`; ``G = 1`` is :func:`alfi.train.stepper`),
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
            _reset_peak(device)
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
                    "peak_mib": _peak_mib(device),
                }
            )
    return rows


def _ensemble_step_ms(
    sim: Simulator,
    settings: dict[str, Any],
    data,
    device: torch.device,
    size: int,
    graphed: bool,
    steps: int,
    warmup: int,
) -> float:
    """Median milliseconds of one step of ``size`` fresh models (one: a model alone)."""
    from alfi.ensemble import Ensemble
    from alfi.train import stepper
    from alfi.train_ensemble import ensemble_stepper

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
        _sync(device)
        start = time.perf_counter()
        run(index, i)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def bench_evaluate(
    name: str,
    device: torch.device,
    problems: int = 8,
    t_test: int = 30,
    paper_problems: int = 500,
) -> dict[str, Any]:
    """Problems per second of :func:`alfi.evaluate.run_alfi` at the paper's K (``inits``)."""
    sim = get_simulator(name)
    settings = paper_settings(name)
    cfg, ev, n_real = settings["train"], settings["evaluate"], settings["dataset"]["n_real"]
    data = make_dataset(sim, problems, n_real, seed=3, device=str(device))
    model = build_model(sim, settings, data).to(device).eval()
    generator = make_generator(4, device)
    run = dict(n_theta=cfg["n_theta"], n_sim=cfg["n_sim"], generator=generator)
    run_alfi(model, sim, make_dataset(sim, 1, n_real, 5), steps=2, inits=4, **run)  # warm-up
    with _measure(device) as m:
        run_alfi(model, sim, data, steps=t_test, inits=ev["inits"], chunk=ev["chunk"], **run)
    rate = problems / m["seconds"]
    return {
        "simulator": name,
        "inits": ev["inits"],
        "t_test": t_test,
        "problems_per_s": rate,
        "projected_minutes_500_problems": paper_problems / rate / 60,
        "peak_mib": m["peak_mib"],
    }


def bench_accuracy(
    name: str,
    device: torch.device,
    budget_s: float,
    evaluations: int = 10,
    test_problems: int = 200,
    n_train: int = 10000,
) -> list[dict[str, Any]]:
    """Train for ``budget_s`` seconds of wall clock, evaluating at ``evaluations`` checkpoints."""
    sim = get_simulator(name)
    settings = paper_settings(name)
    settings["train"]["epochs"] = 10**6  # the budget, not the epochs, ends the run
    n_real = settings["dataset"]["n_real"]
    seed = derive_seed(0, "bench", name)
    data = make_dataset(sim, n_train, n_real, seed=seed, device=str(device))
    test = make_dataset(sim, test_problems, n_real, seed=seed + 1, device=str(device))
    mle = run_mle(sim, test, make_generator(seed + 2, device))
    quantity = "asymmetry" if name == "weinberg" else "theta"

    def rmse(estimate: torch.Tensor, derived: dict[str, torch.Tensor]) -> float:
        if quantity == "asymmetry":
            truth = sim.derived(test.theta)["asymmetry"]
            return float(((derived["asymmetry"] - truth) ** 2).mean().sqrt())
        return float(((estimate - test.theta) ** 2).mean().sqrt())

    mle_rmse = rmse(mle.estimate[0], {k: v[0] for k, v in mle.derived.items()})
    rows, trained_s, steps = [], 0.0, 0
    cfg = settings["train"]
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "bench.ckpt"
        for k in range(1, evaluations + 1):
            # Calibrate steps per segment from the rate so far (first segment: 20 steps).
            rate = steps / trained_s if trained_s > 0 else None
            target = budget_s * k / evaluations
            more = 20 if rate is None else max(1, int((target - trained_s) * rate))
            start = time.perf_counter()
            result = train(
                sim,
                data,
                settings,
                variant="nll-exp",
                seed=seed,
                device=device,
                checkpoint=checkpoint,
                stop_after=steps + more,
                progress=False,
            )
            _sync(device)
            trained_s += time.perf_counter() - start
            steps = result.steps_done
            trajectory = run_alfi(
                result.model,
                sim,
                test,
                steps=cfg["steps"],
                inits=20,
                n_theta=cfg["n_theta"],
                n_sim=cfg["n_sim"],
                generator=make_generator(seed + 3, device),
            )
            rows.append(
                {
                    "simulator": name,
                    "quantity": quantity,
                    "seconds": trained_s,
                    "steps": steps,
                    "alfi_rmse": rmse(
                        trajectory.estimate[-1], {k: v[-1] for k, v in trajectory.derived.items()}
                    ),
                    "mle_rmse": mle_rmse,
                    "peak_mib": _peak_mib(device),
                }
            )
            rows[-1]["ratio"] = rows[-1]["alfi_rmse"] / mle_rmse
            print(
                f"  {name}: {trained_s:7.1f} s  {steps:6d} steps  RMSE {rows[-1]['alfi_rmse']:.4f}"
                f"  (MLE {mle_rmse:.4f}, ratio {rows[-1]['ratio']:.2f})",
                flush=True,
            )
    return rows


def machine() -> dict[str, Any]:
    device_name = platform.processor() or platform.machine()
    return {
        "machine": platform.node(),
        "cpu": device_name,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def run_benchmarks(
    out_dir: Path, device: torch.device, parts: list[str], quick: bool, budgets: dict[str, float]
) -> dict[str, pd.DataFrame]:
    """Run ``parts`` (of :data:`PARTS`) and write each one's table to ``out_dir/{part}.parquet``
    as soon as it is measured (every output path is checked first, so a bad folder stops before
    minutes of measurements, and a failure in a later part keeps the earlier tables)."""
    for part in parts:
        check_output(out_dir / f"{part}.parquet")
    info = machine() | {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device)
    }
    names = paper_config()["simulators"]

    def measure(part: str) -> list[dict]:
        if part == "throughput":
            return [bench_throughput(n, device) for n in names]
        if part == "step":
            return [bench_step(n, device, steps=5 if quick else 30) for n in names]
        if part == "ensemble":
            sizes = (1, 2) if quick else (1, 6, 18)
            return [
                row for n in names for row in bench_ensemble(n, device, sizes, 3 if quick else 20)
            ]
        if part == "evaluate":
            return [bench_evaluate(n, device, problems=2 if quick else 8) for n in names]
        return [
            row
            for name, budget in budgets.items()
            for row in bench_accuracy(
                name,
                device,
                budget,
                evaluations=2 if quick else 10,
                test_problems=20 if quick else 200,
            )
        ]

    tables: dict[str, pd.DataFrame] = {}
    for part in PARTS:  # in this order, whatever the order asked
        if part in parts:
            tables[part] = pd.DataFrame(measure(part)).assign(**info)
            write_parquet(out_dir / f"{part}.parquet", tables[part])
    return tables


def _print(tables: dict[str, pd.DataFrame]) -> None:
    info_cols = ["machine", "cpu", "torch", "threads", "device"]
    first = next(iter(tables.values()))
    print("  ".join(f"{c}={first[c].iloc[0]}" for c in info_cols))
    with pd.option_context(
        "display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format
    ):
        for kind, frame in tables.items():
            print(f"\n## {kind}\n{frame.drop(columns=info_cols).to_string(index=False)}")
        if "ensemble" in tables:
            grid = tables["ensemble"].groupby(["group_size", "cuda_graph"])["grid_hours"].sum()
            print(f"\n## paper grid, projected hours on this device\n{grid.to_string()}")


def run_from_args(args: argparse.Namespace) -> None:
    """``alfi bench``: the arguments as :func:`alfi.cli.build_parser` defines them."""
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads {args.threads}: expected an integer >= 1")
    for name in ("poisson_seconds", "weinberg_seconds"):
        if not getattr(args, name) > 0:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} {getattr(args, name)}: expected a positive number of seconds")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    parts = args.only.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"unknown benchmark part(s) {unknown}; expected {', '.join(PARTS)}")
    budgets = {"poisson": args.poisson_seconds, "weinberg": args.weinberg_seconds}
    if args.quick:
        budgets = {k: min(v, 10.0) for k, v in budgets.items()}
    _print(run_benchmarks(args.out_dir, device, parts, args.quick, budgets))
