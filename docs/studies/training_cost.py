"""Training cost of two settings of one simulator, timed interleaved in one process (issue 9).

The machine's speed drifts by up to 1.6x within a session, so training job-seconds from two
runs do not compare. Here each arm (``config.yaml``'s settings of ``--simulator`` with the
arm's ``train`` keys, or ``model.`` ones, changed) runs ``--steps`` real training steps
(:func:`alfi.train.train` from step 0: fresh problems, schedule and checkpoint logic included;
one thread), the arms
alternating for ``--rounds`` rounds in swapped order, so that a drift touches both alike. Per
arm: the median milliseconds per step over rounds and its range, the steps of its whole
training (``epochs`` x problems / ``meta_batch``) and the projected training seconds; per
round, each arm's step time over the first arm's.

    python docs/studies/training_cost.py --simulator multivariate \\
        --arms "meta_batch=4,epochs=20" "meta_batch=8,epochs=30"
    python docs/studies/training_cost.py --simulator poisson \\
        --arms model.pooling=mean-max model.pooling=mean-max-std

Writes ``OUT/{simulator}.csv`` (one row per arm and round) and prints the summary.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from alfi.config import load_config, settings_for  # noqa: E402
from alfi.data import make_dataset  # noqa: E402
from alfi.io import atomic_path  # noqa: E402
from alfi.schedule import total_steps  # noqa: E402
from alfi.seeds import derive_seed  # noqa: E402
from alfi.simulators import get_simulator  # noqa: E402
from alfi.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


SECTIONS = ("train", "model")  # the settings an arm may change (the data is built once)


def parse_value(text: str) -> Any:
    """``"8"`` to 8, ``"2e-3"`` to 0.002, ``"true"``/``"false"`` to booleans, ``"null"`` or
    ``"none"`` to None, anything else (``cosine``) as text."""
    text = text.strip()
    try:
        number = float(text)
    except ValueError:
        return {"true": True, "false": False, "null": None, "none": None}.get(text.lower(), text)
    return int(number) if number.is_integer() else number


def parse_arm(text: str) -> dict[str, dict[str, Any]]:
    """``"meta_batch=8,model.pooling=mean"`` to ``{"train": {"meta_batch": 8}, "model":
    {"pooling": "mean"}}``: a key without a section is a ``train`` key (values as
    :func:`parse_value` reads them)."""
    arm: dict[str, dict[str, Any]] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().rpartition(".")
        if not sep or not name or (dot and section not in SECTIONS):
            raise SystemExit(
                f"arm item {item!r} (in {text!r}) is not KEY=VALUE with KEY a train key or "
                f"{', '.join(f'{s}.KEY' for s in SECTIONS)}"
            )
        arm.setdefault(section or "train", {})[name] = parse_value(value)
    return arm


def time_arms(simulator: str, arms: list[str], steps: int, rounds: int, seed: int) -> pd.DataFrame:
    """One row per (round, arm): milliseconds per step of ``steps`` steps from step 0."""
    torch.set_num_threads(1)
    sim = get_simulator(simulator)
    config = load_config(ROOT / "config.yaml")
    base = settings_for(config, simulator)
    data = make_dataset(
        sim, base["dataset"]["n_train"], base["dataset"]["n_real"], derive_seed(seed, "cost")
    )
    settings = []
    for changes in [parse_arm(text) for text in arms]:  # every arm read before any training
        resolved = settings_for(config, simulator)  # a fresh copy per arm
        for section, keys in changes.items():
            resolved[section] |= keys
        settings.append(resolved)
    for resolved in settings:
        train(sim, data, resolved, seed=seed, stop_after=5, progress=False)  # warm-up
    rows = []
    for round_ in range(rounds):
        order = range(len(arms)) if round_ % 2 == 0 else reversed(range(len(arms)))
        for index in order:
            start = time.perf_counter()
            train(sim, data, settings[index], seed=seed, stop_after=steps, progress=False)
            ms = (time.perf_counter() - start) / steps * 1000
            total = total_steps(settings[index], data.theta.shape[0])[1]
            rows.append(
                {
                    "simulator": simulator,
                    "arm": arms[index],
                    "round": round_,
                    "ms_per_step": ms,
                    "training_steps": total,
                }
            )
            print(f"round {round_} {arms[index]}: {ms:.1f} ms/step", flush=True)
    return pd.DataFrame(rows)


def summarise(rows: pd.DataFrame) -> str:
    """Per arm: median ms per step (range over rounds), its training's steps and projected
    seconds, and against the first arm: the per-round step ratio and the whole training's cost
    (median step ratio x the ratio of training steps)."""
    first = rows["arm"].iloc[0]
    per_round = rows.pivot(index="round", columns="arm", values="ms_per_step")
    steps = rows.groupby("arm")["training_steps"].first()
    lines = []
    for arm in rows["arm"].unique():
        ms = per_round[arm]
        ratios = ms / per_round[first]
        cost = statistics.median(ratios) * steps[arm] / steps[first]
        lines.append(
            f"{arm}: {ms.median():.1f} ms/step ({ms.min():.1f}-{ms.max():.1f}), {steps[arm]} "
            f"steps, projected {steps[arm] * ms.median() / 1000:.0f} s; step over {first}'s "
            f"{ratios.min():.3f}-{ratios.max():.3f} per round, training cost {cost:.3f} of its"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", default="multivariate")
    parser.add_argument(
        "--arms", nargs="+", default=["meta_batch=4,epochs=20", "meta_batch=8,epochs=30"]
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "studies" / "training_cost")
    args = parser.parse_args()
    rows = time_arms(args.simulator, args.arms, args.steps, args.rounds, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / f"{args.simulator}.csv") as path:
        rows.to_csv(path, index=False)
    print(summarise(rows))


if __name__ == "__main__":
    main()
