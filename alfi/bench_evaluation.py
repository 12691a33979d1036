"""Evaluation benchmarks: inference speed at the paper's scale, test error against training time.

1. ``evaluate`` (:func:`bench_evaluate`) — paper-scale evaluation (K = 500 inits, T_test = 30):
   problems per second and the projected time for 500 problems.
2. ``accuracy`` (:func:`bench_accuracy`) — test RMSE against training wall-clock for Poisson
   (on θ) and Weinberg (on the identifiable a(θ)), the MLE's RMSE on the same problems beside it.

Each row carries peak memory (:func:`alfi.bench_harness.peak_mib`).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from alfi.bench_harness import measure, paper_settings, peak_mib, sync
from alfi.data import make_dataset, make_generator
from alfi.evaluate import run_mle
from alfi.evaluate_alfi import run_alfi
from alfi.seeds import derive_seed
from alfi.simulators import get_simulator
from alfi.train import build_model, train

__all__ = ["bench_evaluate", "bench_accuracy"]


def bench_evaluate(
    name: str,
    device: torch.device,
    problems: int = 8,
    t_test: int = 30,
    paper_problems: int = 500,
) -> dict[str, Any]:
    """Problems per second of :func:`alfi.evaluate_alfi.run_alfi` at the paper's K (``inits``)."""
    sim = get_simulator(name)
    settings = paper_settings(name)
    cfg, ev, n_real = settings["train"], settings["evaluate"], settings["dataset"]["n_real"]
    data = make_dataset(sim, problems, n_real, seed=3, device=str(device))
    model = build_model(sim, settings, data).to(device).eval()
    generator = make_generator(4, device)
    run = dict(n_theta=cfg["n_theta"], n_sim=cfg["n_sim"], generator=generator)
    run_alfi(model, sim, make_dataset(sim, 1, n_real, 5), steps=2, inits=4, **run)  # warm-up
    with measure(device) as m:
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
            sync(device)
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
                    "peak_mib": peak_mib(device),
                }
            )
            rows[-1]["ratio"] = rows[-1]["alfi_rmse"] / mle_rmse
            print(
                f"  {name}: {trained_s:7.1f} s  {steps:6d} steps  RMSE {rows[-1]['alfi_rmse']:.4f}"
                f"  (MLE {mle_rmse:.4f}, ratio {rows[-1]['ratio']:.2f})",
                flush=True,
            )
    return rows
