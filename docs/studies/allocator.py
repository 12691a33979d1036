"""Training steps with glibc's default allocator and with ``alfi.allocator``'s tuning (issue 9).

``alfi.allocator.retain_freed_memory`` changes a process-wide setting, so each arm runs in its
own process: a worker builds a meta-dataset (``config.yaml``'s sizes of ``simulator``, a seed of
its own), trains 5 steps of warm-up and then ``--steps`` steps from step 0 (:func:`alfi.train.train`
at ``config.yaml``'s settings, one thread) and reports milliseconds and minor page faults per
step and a digest of the weights. The arms alternate for ``--rounds`` rounds in swapped order,
so that a drift of the machine touches both alike.

    python docs/studies/allocator.py --simulators poisson weinberg multivariate linear_regression

Writes ``OUT/allocator.csv`` (one row per simulator, arm and round) and prints the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
ARMS = ("default", "tuned")


def worker(simulator: str, arm: str, steps: int, seed: int) -> dict:
    """One arm's measurement, in this process (``arm="tuned"`` tunes the allocator first)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    from alfi.allocator import retain_freed_memory

    tuned = retain_freed_memory() if arm == "tuned" else False
    import torch

    from alfi.config import load_config, settings_for
    from alfi.data import make_dataset
    from alfi.provenance import array_digest
    from alfi.seeds import derive_seed
    from alfi.simulators import get_simulator
    from alfi.train import train

    torch.set_num_threads(1)
    sim = get_simulator(simulator)
    settings = settings_for(load_config(ROOT / "config.yaml"), simulator)
    sizes = settings["dataset"]
    data = make_dataset(sim, sizes["n_train"], sizes["n_real"], derive_seed(seed, "allocator"))
    train(sim, data, settings, seed=seed, stop_after=5, progress=False)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    result = train(sim, data, settings, seed=seed, stop_after=steps, progress=False)
    seconds = time.perf_counter() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    weights = [p.detach().numpy() for p in result.model.parameters()]
    return {
        "simulator": simulator,
        "arm": arm,
        "tuned": tuned,
        "ms_per_step": seconds / steps * 1000,
        "faults_per_step": faults / steps,
        "weights": array_digest(*weights),
    }


def measure(simulators: list[str], steps: int, rounds: int, seed: int) -> pd.DataFrame:
    rows = []
    for simulator in simulators:
        for round_ in range(rounds):
            for arm in ARMS if round_ % 2 == 0 else ARMS[::-1]:
                command = [sys.executable, __file__, "--worker", simulator, arm]
                command += ["--steps", str(steps), "--seed", str(seed)]
                out = subprocess.run(command, capture_output=True, text=True, check=True)
                row = json.loads(out.stdout.strip().splitlines()[-1]) | {"round": round_}
                rows.append(row)
                print(
                    f"{simulator} round {round_} {arm}: {row['ms_per_step']:.1f} ms/step, "
                    f"{row['faults_per_step']:.0f} faults/step",
                    flush=True,
                )
    return pd.DataFrame(rows)


def summarise(rows: pd.DataFrame) -> str:
    """Per simulator: median ms per step of each arm (range), tuned / default per round, faults
    per step, and whether the weights after training are the same in every run."""
    lines = [
        "| simulator | default ms/step | tuned ms/step | tuned / default, per round "
        "| faults/step default → tuned | weights identical |",
        "|---|---:|---:|---|---|---|",
    ]
    for simulator, group in rows.groupby("simulator", sort=False):
        ms = group.pivot(index="round", columns="arm", values="ms_per_step")
        faults = group.groupby("arm")["faults_per_step"].median()
        ratios = ", ".join(f"{r:.2f}" for r in ms["tuned"] / ms["default"])
        cells = [
            f"{ms[arm].median():.1f} ({ms[arm].min():.1f}–{ms[arm].max():.1f})" for arm in ARMS
        ]
        same = "yes" if group["weights"].nunique() == 1 else "no"
        lines.append(
            f"| {simulator} | {cells[0]} | {cells[1]} | {ratios} "
            f"| {faults['default']:.0f} → {faults['tuned']:.0f} | {same} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--simulators",
        nargs="+",
        default=["poisson", "weinberg", "multivariate", "linear_regression"],
    )
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "studies" / "allocator")
    parser.add_argument("--worker", nargs=2, metavar=("SIMULATOR", "ARM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.steps, args.seed)))
        return
    from alfi.io import atomic_path

    rows = measure(args.simulators, args.steps, args.rounds, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "allocator.csv") as path:
        rows.to_csv(path, index=False)
    print(summarise(rows))


if __name__ == "__main__":
    main()
