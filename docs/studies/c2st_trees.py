"""C2ST cost study: how many trees does the C2ST's random forest need?

Every method with draws is compared with the exact posterior by sbi's C2ST
(``alfi.calibration.c2st``), a random forest fitted five times (5-fold cross-validation) per
problem. At scikit-learn's default of 100 trees that costs about 1.2–1.4 s per problem on one
core, about a third of the default run's job-seconds. This study measures what fewer trees change.

For each simulator with an exact posterior, on ``--problems`` test problems (200 observations
each), the exact posterior's 1000 draws are compared with a ladder of alternatives of 1000 draws:
a second exact draw (the same law: C2ST 0.5 in expectation) and Gaussians with the exact
posterior's sd scaled by ``s`` and its mean shifted by ``d`` sds, for ``(d, s)`` in
``LADDER``: from nearly right (C2ST about 0.58) to far off (about 0.98).
Each pair is scored with 100 trees at two seeds (the seed-to-seed spread of the metric itself)
and with fewer trees at the first seed.

    python docs/studies/c2st_trees.py --out docs/studies/c2st_trees

Writes ``OUT/c2st_trees.csv`` (one row per pair and forest) and ``OUT/summary.md``.
"""

from __future__ import annotations

import argparse
import os
import time
from multiprocessing import Pool
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from alfi.calibration import c2st  # noqa: E402
from alfi.data import make_dataset, make_generator  # noqa: E402
from alfi.reference import run_reference  # noqa: E402
from alfi.seeds import derive_seed  # noqa: E402
from alfi.simulators import get_simulator  # noqa: E402

SIMULATORS = ("poisson", "linear_regression", "multivariate", "weinberg")
LADDER = ((0.0, 1.0), (0.0, 1.3), (0.5, 1.0), (0.0, 0.6), (1.0, 1.5), (2.0, 1.0), (4.0, 1.0))
FORESTS = ((100, 1), (100, 2), (50, 1), (25, 1), (10, 1))  # (trees, seed)
N_REAL, DRAWS = 200, 1000


def alternatives(exact, second: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The ladder for every problem at once: ``{label: (N, DRAWS, D)}``."""
    mean, sd = exact.estimate[0].numpy(), exact.sigma[0].numpy()
    ladder = {"exact again": second}
    for shift, scale in LADDER:
        noise = rng.standard_normal((mean.shape[0], DRAWS, mean.shape[1]))
        ladder[f"gauss d={shift:g} s={scale:g}"] = (
            mean[:, None] + shift * sd[:, None] + scale * sd[:, None] * noise
        )
    return ladder


def score(name: str, problems: int) -> list[dict]:
    sim = get_simulator(name)
    data = make_dataset(sim, problems, N_REAL, seed=derive_seed(0, "c2st-study", name))
    exact = run_reference(sim, data, make_generator(1), draws=DRAWS)
    second = run_reference(sim, data, make_generator(2), draws=DRAWS).draws.numpy()
    reference = exact.draws.numpy()
    rows = []
    rng = np.random.default_rng(derive_seed(0, "c2st-study-ladder", name))
    for label, draws in alternatives(exact, second, rng).items():
        for trees, seed in FORESTS:
            start = time.perf_counter()
            values = c2st(draws, reference, seed=seed, trees=trees)
            seconds = (time.perf_counter() - start) / problems
            rows += [
                {
                    "simulator": name,
                    "alternative": label,
                    "problem": i,
                    "trees": trees,
                    "seed": seed,
                    "c2st": float(v),
                    "seconds": seconds,
                }
                for i, v in enumerate(values)
            ]
        print(name, label, flush=True)
    return rows


def summarise(table: pd.DataFrame) -> str:
    """Each forest against 100 trees at seed 2: an independent forest on other folds. (Seed 1's
    100-tree forest shares its first trees and its folds with the smaller seed-1 forests.)"""
    key = ["simulator", "alternative", "problem"]
    independent = table.query("trees == 100 and seed == 2").set_index(key)["c2st"]
    lines = [
        "| forest (seed 1) | mean C2ST | mean \\|Δ\\| | max \\|Δ\\| | mean Δ | s per problem |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for trees in sorted(table["trees"].unique(), reverse=True):
        values = table.query("trees == @trees and seed == 1").set_index(key)["c2st"]
        delta = values - independent
        seconds = table.query("trees == @trees")["seconds"].mean()
        lines.append(
            f"| {trees} trees | {values.mean():.3f} | {delta.abs().mean():.4f} | "
            f"{delta.abs().max():.3f} | {delta.mean():+.4f} | {seconds:.2f} |"
        )
    forest = table["trees"].astype(str) + " trees, seed " + table["seed"].astype(str)
    by_rung = (
        table.assign(forest=forest)
        .pivot_table(index="alternative", columns="forest", values="c2st", aggfunc="mean")
        .round(3)[[f"{trees} trees, seed {seed}" for trees, seed in FORESTS]]
    )
    return (
        f"C2ST of {table['problem'].nunique()} problems × {table['simulator'].nunique()} "
        f"simulators × {table['alternative'].nunique()} alternatives against 1000 exact draws "
        "(Δ: against 100 trees at seed 2, per pair; the 100-tree row is the metric's own "
        "seed-to-seed spread):\n\n"
        + "\n".join(lines)
        + "\n\nMean C2ST per alternative:\n\n"
        + by_rung.to_markdown()
        + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/studies/c2st_trees"))
    parser.add_argument("--problems", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2, help="simulators scored side by side")
    parser.add_argument(
        "--summary-only", action="store_true", help="rewrite summary.md from OUT/c2st_trees.csv"
    )
    args = parser.parse_args()
    if args.summary_only:
        table = pd.read_csv(args.out / "c2st_trees.csv")
        (args.out / "summary.md").write_text(summarise(table))
        return
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    with Pool(args.jobs) as pool:
        parts = pool.starmap(score, [(name, args.problems) for name in SIMULATORS])
    rows = [row for part in parts for row in part]
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "c2st_trees.csv", index=False)
    (args.out / "summary.md").write_text(summarise(table))
    print(summarise(table))


if __name__ == "__main__":
    main()
