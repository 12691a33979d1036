"""Seeds as an ensemble on the CPU at the default run's shapes (issue 9, item 5).

Can the default run afford three seeds of every model by training them together? Per simulator
at ``config.yaml``'s settings, one thread, three arms timed interleaved in one process (the
machine's speed drifts between spells, so only arms timed side by side compare):

- ``alone``: one model, :func:`alfi.train.train` (seed 0);
- ``ensemble``: ``G`` seeds of it as one batched ensemble,
  :func:`alfi.train_ensemble.train_ensemble` (``torch.func.vmap`` over stacked weights; what
  ``resources.train_group_size: G`` runs);
- ``batch xG``: one model whose meta-batch is ``G`` times larger, the same operations on ``G``
  times the data. It stands for an ensemble whose every operation is batched without ``vmap``'s
  own cost (grouped weights written by hand): the least a group of ``G`` could cost per step.

Each arm runs ``--steps`` real training steps from step 0 (schedule, fresh problems and the
tail as the run trains them), in ``--rounds`` rounds of alternating order. Linear regression,
the multivariate problem and Weinberg (``tail_from: 2/3``) are timed in both phases of their
training: ``horizon`` (their first steps, T updates alone) and ``tail`` (``tail_from: 0``: the
training tail joins every step, as in their last third); Poisson has the tail at every step.

    python docs/studies/ensemble_cpu.py                 # every simulator, both phases
    python docs/studies/ensemble_cpu.py --simulators poisson --group 6

Writes ``OUT/ensemble_cpu.csv`` (one row per simulator, phase, arm and round: milliseconds per
step) and ``OUT/summary.md``: per simulator and phase, each arm's median step and its cost per
model against ``alone`` (per-round ratios, median and range).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from alfi.config import load_config, settings_for  # noqa: E402
from alfi.data import make_dataset  # noqa: E402
from alfi.io import atomic_path  # noqa: E402
from alfi.seeds import derive_seed  # noqa: E402
from alfi.simulators import get_simulator  # noqa: E402
from alfi.train import train  # noqa: E402
from alfi.train_ensemble import train_ensemble  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SIMULATORS = ("linear_regression", "multivariate", "weinberg", "poisson")


def arms(settings: dict[str, Any], group: int) -> dict[str, tuple[dict[str, Any], int]]:
    """Arm name to (settings, models trained per step)."""
    batched = {**settings, "train": {**settings["train"]}}
    batched["train"]["meta_batch"] = group * settings["train"]["meta_batch"]
    return {"alone": (settings, 1), f"ensemble G={group}": (settings, group),
            f"batch x{group}": (batched, group)}  # fmt: skip


def run_arm(sim, data, settings: dict[str, Any], name: str, group: int, steps: int) -> float:
    """Milliseconds per training step of the arm ``name`` (all its models together)."""
    start = time.perf_counter()
    if name.startswith("ensemble"):
        members = [("nll-exp", seed) for seed in range(group)]
        train_ensemble(sim, data, settings, members, stop_after=steps, progress=False)
    else:
        train(sim, data, settings, seed=0, stop_after=steps, progress=False)
    return (time.perf_counter() - start) / steps * 1000


def time_simulator(name: str, tail: bool, group: int, steps: int, rounds: int) -> pd.DataFrame:
    """One row per (arm, round) for simulator ``name`` in one phase of its training."""
    sim = get_simulator(name)
    settings = settings_for(load_config(ROOT / "config.yaml"), name)
    if tail:
        settings["train"]["tail_from"] = 0
    data = make_dataset(
        sim, settings["dataset"]["n_train"], settings["dataset"]["n_real"], derive_seed(0, "cost")
    )
    phase = "tail" if tail or name == "poisson" else "horizon"
    table = arms(settings, group)
    for arm, (resolved, _) in table.items():  # warm-up: allocator, first-call costs
        run_arm(sim, data, resolved, arm, group, 3)
    rows = []
    for round_ in range(rounds):
        order = list(table) if round_ % 2 == 0 else list(reversed(table))
        for arm in order:
            resolved, models = table[arm]
            ms = run_arm(sim, data, resolved, arm, group, steps)
            rows.append({"simulator": name, "phase": phase, "arm": arm, "round": round_,
                         "models": models, "ms_per_step": ms})  # fmt: skip
            print(f"{name} {phase} round {round_} {arm}: {ms:.1f} ms/step", flush=True)
    return pd.DataFrame(rows)


def summarise(rows: pd.DataFrame) -> str:
    """Markdown: per simulator, phase and arm, the median step and the per-model cost against
    ``alone`` (median of the per-round ratios, and their range)."""
    lines = ["| simulator | phase | arm | ms per step (median) | per model, × alone (range) |",
             "|---|---|---|---:|---|"]  # fmt: skip
    for (name, phase), part in rows.groupby(["simulator", "phase"], sort=False):
        wide = part.pivot(index="round", columns="arm", values="ms_per_step")
        models = part.groupby("arm")["models"].first()
        for arm in part["arm"].unique():
            ratio = wide[arm] / models[arm] / wide["alone"]
            lines.append(
                f"| {name} | {phase} | {arm} | {wide[arm].median():.1f} | "
                f"{ratio.median():.2f} ({ratio.min():.2f}–{ratio.max():.2f}) |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulators", default=",".join(SIMULATORS))
    parser.add_argument("--group", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "studies" / "ensemble_cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    frames = []
    for name in args.simulators.split(","):
        if name not in SIMULATORS:
            raise SystemExit(f"unknown simulator {name!r}; expected one of {SIMULATORS}")
        phases = [False] if name == "poisson" else [False, True]
        for tail in phases:
            frames.append(time_simulator(name, tail, args.group, args.steps, args.rounds))
    rows = pd.concat(frames, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "ensemble_cpu.csv") as path:
        rows.to_csv(path, index=False)
    summary = summarise(rows)
    with atomic_path(args.out / "summary.md") as path:
        path.write_text(summary + "\n")
    print(summary)


if __name__ == "__main__":
    main()
