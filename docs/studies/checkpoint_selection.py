r"""Would a validation split with best-checkpoint selection beat the last weights? (issue 9)

For each simulator and seed of a finished workflow run, the main variant (``nll-exp``) is trained
again under the run's own settings, stopped at each ``--fractions`` of its steps (the training
resumes from its checkpoint, bit for bit as one uninterrupted run: the last snapshot is the run's
own model), and every snapshot is evaluated with ``alfi evaluate`` on the run's test problems at
T_test = 15 and 30. Two processes at a time, one torch thread each.

Per snapshot, on the N test problems: ``ratio``, ALFI's mean per-problem RMSE over the MLE's (on
Weinberg, the error on a(θ)), and the central 90 % interval's coverage. Two selections:

* **oracle**: the snapshot with the lowest ratio on all N problems, an upper bound on what any
  rule choosing among these snapshots can gain (it looks at the answers);
* **cross-fitted validation**: the problems split in two halves at random; the snapshot with the
  lowest ALFI error on one half is scored on the other, and the two halves swap; the mean over
  200 seeded splits. This is what a validation split of N / 2 held-out problems drawn as the test
  problems are would give, without the MLE (selection reads ALFI's error against θ* only), and
  without taking those problems from the training set (which a real split of a stored
  meta-dataset would: the study favours selection there). Each T_test selects on its own.

Per simulator, seed and T_test, every snapshot's ratio and coverage and the two selections go to
``OUT/selections.csv``; the per-problem errors to ``OUT/errors.parquet`` (not kept in git); the
summary, per simulator and T_test (mean ± sd over seeds, and each selection's paired difference
from the last snapshot, mean ± standard error over seeds), to ``OUT/summary.md``.

    python docs/studies/checkpoint_selection.py RUN OUT --seeds 0,1,2 \
        --fractions 0.5,0.6,0.7,0.8,0.9,1
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arms import HORIZONS, coverage, problem_errors  # noqa: E402

from alfi.allocator import retain_freed_memory  # noqa: E402
from alfi.checkpoints import save_model  # noqa: E402
from alfi.columns import MAIN_VARIANT  # noqa: E402
from alfi.config import settings_for  # noqa: E402
from alfi.io import load_dataset  # noqa: E402
from alfi.schedule import total_steps  # noqa: E402
from alfi.seeds import run_seed  # noqa: E402
from alfi.simulators import get_simulator  # noqa: E402
from alfi.train import train  # noqa: E402

SPLIT_SEED = 20261203  # the halves of the cross-fitted validation
SPLITS = 200  # random splits per simulator, seed and T_test: the split's own noise averaged out


def snapshots(run: Path, simulator: str, seed: int, fractions: list[float], out: Path) -> None:
    """Train ``simulator``'s main variant of ``seed`` under the run's settings, writing a model
    at each fraction of its steps, then evaluate every snapshot not yet evaluated."""
    torch.set_num_threads(1)
    retain_freed_memory()  # as `alfi train` does: no number moves, the steps are faster
    results = run / "results"
    config_file = results / "settings" / simulator / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    # the run's settings of one simulator, its overrides already resolved
    settings = settings_for({**config, "overrides": {}}, simulator, MAIN_VARIANT)
    sim = get_simulator(simulator)
    data = load_dataset(results / "data" / simulator / "train.npz", sim)
    total = total_steps(settings, len(data))[1]
    folder = out / simulator / f"seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    for fraction in fractions:
        model = folder / f"f{fraction:g}.pt"
        if model.exists():
            continue
        result = train(
            sim,
            data,
            settings,
            variant=MAIN_VARIANT,
            seed=run_seed(config["seed"], seed),
            checkpoint=folder / "ckpt.pt",
            stop_after=round(fraction * total),
            progress=False,
        )
        save_model(
            model,
            result.model,
            sim,
            settings,
            variant=MAIN_VARIANT,
            seed=seed,  # the config's seeds entry, as `alfi train` stores it (evaluation draws)
            history=result.history,
            provenance=result.provenance,
        )
    alfi = str(Path(sys.executable).parent / "alfi")
    for fraction in fractions:
        tables = [
            str(folder / f"f{fraction:g}_{kind}{t}.parquet") for kind in "ems" for t in HORIZONS
        ]
        if Path(tables[1]).exists():
            continue
        command = [alfi, "--quiet", "evaluate", "--config", str(config_file), "--threads", "1"]
        command += ["--model", str(folder / f"f{fraction:g}.pt"), "--t-test", *map(str, HORIZONS)]
        command += ["--dataset", str(results / "data" / simulator / "test.npz")]
        command += ["--estimates", *tables[:2], "--metrics", *tables[2:4], "--samples", *tables[4:]]
        subprocess.run(command, check=True)


def score(run: Path, out: Path, simulators: list[str], seeds: list[int], fractions: list[float]):
    rows = []
    for simulator in simulators:
        weinberg = simulator == "weinberg"
        mle = pd.read_parquet(run / "results" / "runs" / simulator / "mle" / "estimates.parquet")
        mle_errors = problem_errors(mle, weinberg)
        for seed, fraction, t in itertools.product(seeds, fractions, HORIZONS):
            path = out / simulator / f"seed{seed}" / f"f{fraction:g}_e{t}.parquet"
            estimates = pd.read_parquet(path)
            errors = problem_errors(estimates, weinberg)
            for problem, error in errors.items():
                rows.append(
                    dict(simulator=simulator, seed=seed, fraction=fraction, t_test=t,
                         problem=problem, error=error, mle_error=mle_errors[problem])
                )  # fmt: skip
            rows.append(
                dict(simulator=simulator, seed=seed, fraction=fraction, t_test=t, problem=-1,
                     coverage=coverage(estimates))
            )  # fmt: skip
    return pd.DataFrame(rows)


def selections(frame: pd.DataFrame) -> pd.DataFrame:
    """Per simulator, seed and T_test: the last snapshot's ratio, the oracle's and the cross-fitted
    validation's over :data:`SPLITS` random splits (see the module's docstring), with the share of
    halves whose pick was the last snapshot."""
    per_problem = frame[frame.problem >= 0]
    out = []
    for (simulator, seed, t), group in per_problem.groupby(["simulator", "seed", "t_test"]):
        table = group.pivot(index="problem", columns="fraction", values="error")
        mle = group.drop_duplicates("problem").set_index("problem").mle_error.loc[table.index]
        ratios = table.mean() / mle.mean()
        rng = np.random.default_rng([SPLIT_SEED, zlib.crc32(simulator.encode()), seed, t])
        validated, kept_last = [], []
        for _ in range(SPLITS):
            order = rng.permutation(len(table))
            halves = [table.index[order[: len(order) // 2]], table.index[order[len(order) // 2 :]]]
            scored = mle_total = 0.0
            for pick, report in (halves, halves[::-1]):
                chosen = table.loc[pick].mean().idxmin()
                scored += table.loc[report, chosen].mean()
                mle_total += mle.loc[report].mean()
                kept_last.append(chosen == table.columns.max())
            validated.append(scored / mle_total)
        out.append(
            dict(simulator=simulator, seed=seed, t_test=t, last=ratios[table.columns.max()],
                 oracle=ratios.min(), oracle_fraction=ratios.idxmin(),
                 validated=float(np.mean(validated)), validated_kept_last=float(np.mean(kept_last)),
                 **{f"f{f:g}": r for f, r in ratios.items()})
        )  # fmt: skip
    return pd.DataFrame(out)


def summarise(chosen: pd.DataFrame, coverages: pd.DataFrame) -> str:
    fractions = [c for c in chosen.columns if c.startswith("f") and c[1].isdigit()]
    head = "| simulator | T_test | " + " | ".join(fractions)
    head += " | oracle (Δ ± se) | validated (Δ ± se) | validation keeps the last"
    head += " | coverage by fraction |"
    lines = [head, "|---|---:|" + "---:|" * (len(fractions) + 2) + "---|---|"]

    def cell(values: pd.Series) -> str:
        return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"

    def paired(values: pd.Series, last: pd.Series) -> str:
        diff = values - last
        error = diff.std(ddof=1) / np.sqrt(len(diff))
        return f"{values.mean():.3f} ({diff.mean():+.3f} ± {error:.3f})"

    for (simulator, t), group in chosen.groupby(["simulator", "t_test"], sort=False):
        cov = coverages[(coverages.simulator == simulator) & (coverages.t_test == t)]
        by_fraction = cov.groupby("fraction").coverage.mean()
        cells = [cell(group[f]) for f in fractions]
        cells += [paired(group.oracle, group["last"]), paired(group.validated, group["last"])]
        cells.append(" / ".join(f"{k:.0%}" for k in group.validated_kept_last))
        cells.append(" / ".join(f"{c:.2f}" for c in by_fraction))
        lines.append(f"| {simulator} | {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished workflow run's folder")
    parser.add_argument("out", type=Path)
    parser.add_argument("--simulators", default="poisson,linear_regression,multivariate,weinberg")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--fractions", default="0.5,0.6,0.7,0.8,0.9,1")
    args = parser.parse_args()
    simulators = args.simulators.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    fractions = sorted(float(f) for f in args.fractions.split(","))
    jobs = list(itertools.product(simulators, seeds))
    with ProcessPoolExecutor(2) as pool:
        waiting = [
            pool.submit(snapshots, args.run, s, seed, fractions, args.out) for s, seed in jobs
        ]
        for job in waiting:
            job.result()
    frame = score(args.run, args.out, simulators, seeds, fractions)
    frame.to_parquet(args.out / "errors.parquet", index=False)  # per problem: not kept in git
    chosen = selections(frame)
    coverages = frame[frame.problem < 0]
    keys = ["simulator", "seed", "t_test"]
    by_fraction = coverages.pivot_table(index=keys, columns="fraction", values="coverage")
    by_fraction.columns = [f"coverage_f{f:g}" for f in by_fraction.columns]
    chosen.merge(by_fraction.reset_index(), on=keys).to_csv(
        args.out / "selections.csv", index=False, float_format="%.5g"
    )
    text = summarise(chosen, coverages)
    (args.out / "summary.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
