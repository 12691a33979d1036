r"""Arms of one simulator's variant against a finished workflow run: one setting changed.

Each arm edits the run's settings of ``SIMULATOR`` (``RUN/results/settings/SIMULATOR/config.yaml``),
trains the ``--variant`` model (``nll-exp``, the main one, unless named) of every ``--seeds`` seed
with ``alfi train`` on the run's stored training data and evaluates it with ``alfi evaluate`` on
the run's test problems at T_test = 15 and 30 (two processes at a time, one torch thread each).
An arm is ``NAME=JSON``: the JSON maps ``train`` keys, or ``model.KEY`` for the model's, to their
new values, on top of the variant's own settings (``variant_overrides`` included); ``base={}``
is the run's own settings (its seed 0 is the run's own model, bit for bit on the machine that ran
it). A training that diverges (alfi train's exit status 3) is reported as such, with
no scores; any other failure stops the script.

Per arm and seed, against the exact MLE and the exact posterior on the same problems:

* ``ratio``: mean per-problem RMSE of ALFI / of the MLE (Weinberg: the error on a(θ));
* ``coverage``: fraction of (problem, coordinate) truths inside the central 90 % interval of
  the final proposal mixture, beside the exact posterior's own on the same truths;
* ``width``: median over problems of the median over parameters of ALFI's σ / the exact
  posterior's sd.

Rows go to ``OUT/arms.csv``, the arms to ``OUT/arms.json``; the summary (mean ± sd over seeds,
and each arm's paired difference from the first arm, mean ± standard error over seeds) is
printed as Markdown. A model already in its folder is not trained again (its tables are
remade only if missing); a folder that holds an arm of other settings stops the script.

    python docs/studies/arms.py RUN SIMULATOR OUT --seeds 0,1,2,3,4 \
        base='{}' tc02='{"tail_clip_scale": 0.02}'
    python docs/studies/arms.py RUN poisson OUT --variant nll-const \
        base='{}' capped='{"model.score_gradient": "bounded"}'
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from alfi.cli import EXIT_DIVERGED
from alfi.config import SCHEMA_PATH, settings_for
from alfi.metrics import derived_error, final_rmse

HORIZONS = (15, 30)
CENTRAL = 0.45  # |quantile - 1/2| <= 0.45: inside the central 90 % interval


def parse_arm(text: str) -> tuple[str, dict]:
    name, _, edits = text.partition("=")
    if not name or not edits:
        raise SystemExit(f"an arm is NAME=JSON, got {text!r}")
    values = json.loads(edits)
    if not isinstance(values, dict):
        raise SystemExit(f"arm {name!r}: expected a JSON object of settings, got {edits!r}")
    return name, values


def arm_config(base: dict, simulator: str, edits: dict, variant: str) -> dict:
    config = copy.deepcopy(base)
    # the variant's own settings (alfi's merge) become the arm's base, so that an edit is not
    # overridden by them; the run's settings are resolved per simulator, with no overrides left
    config["defaults"] = settings_for({**config, "overrides": {}}, simulator, variant)
    config.get("variant_overrides", {}).pop(variant, None)
    schema = json.loads(SCHEMA_PATH.read_text())["$defs"]
    for key, value in edits.items():
        section, _, name = key.rpartition(".")
        # a key the run's settings hold, or an optional one of the schema's (no default)
        known = set(config["defaults"].get(section or "train", {}))
        known |= set(schema.get(section or "train", {}).get("properties", {}))
        if section not in ("", "model") or name not in known:
            raise SystemExit(f"unknown setting {key!r}: expected a train key or model.KEY")
        config["defaults"][section or "train"][name] = value
    return config


def run_arm(
    results: Path, simulator: str, variant: str, folder: Path, config: dict, seed: int
) -> bool:
    """Train (unless done) and evaluate one arm's seed; False where its training diverged."""
    folder.mkdir(parents=True, exist_ok=True)
    alfi = str(Path(sys.executable).parent / "alfi")
    model, settings = folder / "model.pt", folder / "train.yaml"
    if settings.exists() and yaml.safe_load(settings.read_text()) != config:
        raise SystemExit(f"{folder} holds an arm of other settings: another OUT, or remove it")
    settings.write_text(yaml.safe_dump(config))
    data = results / "data" / simulator
    trained = not model.exists()
    if trained:
        train = [alfi, "train", "--config", str(settings), "--simulator", simulator]
        train += ["--variant", variant, "--seed", str(seed), "--threads", "1"]
        train += ["--dataset", str(data / "train.npz"), "--checkpoint", str(folder / "ckpt.pt")]
        with open(folder / "train.log", "w") as log:
            stopped = subprocess.run([*train, "--out", str(model)], stdout=log, stderr=log)
        if stopped.returncode == EXIT_DIVERGED:
            print(f"{folder}: the training diverged (alfi train's TrainingDivergedError)")
            return False
        if stopped.returncode:
            raise SystemExit(f"{folder}: alfi train failed, not by divergence: see train.log")
    tables = {t: [str(folder / f"{t}{h}.parquet") for h in HORIZONS] for t in ("est", "m", "s")}
    if trained or not Path(tables["est"][-1]).exists():
        evaluate = [alfi, "--quiet", "evaluate", "--config", str(settings), "--model", str(model)]
        evaluate += ["--t-test", *map(str, HORIZONS), "--dataset", str(data / "test.npz")]
        evaluate += ["--threads", "1", "--estimates", *tables["est"], "--metrics", *tables["m"]]
        with open(folder / "evaluate.log", "w") as log:
            subprocess.run(
                [*evaluate, "--samples", *tables["s"]], stdout=log, stderr=log, check=True
            )
    return True


def final(estimates: pd.DataFrame) -> pd.DataFrame:
    return estimates[(estimates.t == estimates.t.max()) & ~estimates.derived]


def problem_errors(estimates: pd.DataFrame, weinberg: bool) -> pd.Series:
    """Per-problem error at the last update: the final RMSE over parameters (Weinberg: the error
    on a(θ)), indexed by problem."""
    if weinberg:
        at_end = estimates[estimates.t == estimates.t_test]
        return derived_error(at_end, "asymmetry").set_index("problem")["error"]
    return final_rmse(estimates).set_index("problem")["rmse"]


def coverage(estimates: pd.DataFrame) -> float:
    """Fraction of (problem, coordinate) truths inside the final central 90 % interval."""
    return (final(estimates).truth_quantile.dropna() - 0.5).abs().le(CENTRAL).mean()


def score(estimates: pd.DataFrame, mle: pd.DataFrame, exact: pd.DataFrame, weinberg: bool) -> dict:
    ratio = problem_errors(estimates, weinberg).mean() / problem_errors(mle, weinberg).mean()
    keys = ["problem", "parameter"]
    width = final(estimates).set_index(keys).sigma / final(exact).set_index(keys).sigma
    return {
        "ratio": ratio,
        "coverage": coverage(estimates),
        "exact_coverage": coverage(exact),
        "width": width.groupby(level="problem").median().median(),
    }


def summarise(rows: pd.DataFrame, arms: list[str]) -> str:
    metrics = ["ratio", "coverage", "width"]
    head = " | ".join(metrics) + " | ratio per seed | coverage per seed | paired Δ ratio |"
    head += " paired Δ coverage |"
    lines = [f"| arm | T_test | {head}", "|---|---:|" + "---:|" * (len(metrics) + 4)]
    first = rows[rows.arm == arms[0]].set_index(["t_test", "seed"])
    for arm, t in itertools.product(arms, HORIZONS):
        these = rows[(rows.arm == arm) & (rows.t_test == t)].set_index("seed")
        # a diverged training leaves its arm's means NaN rather than the survivors' mean
        cells = [
            f"{these[m].mean(skipna=False):.3f} ± {these[m].std(ddof=1, skipna=False):.3f}"
            for m in metrics
        ]
        cells.append(" / ".join(f"{r:.3g}" for r in these.ratio))  # NaN: the training diverged
        cells.append(" / ".join(f"{c:.2f}" for c in these.coverage))
        for m in ("ratio", "coverage"):
            diff = (these[m] - first.loc[t][m]).dropna()
            paired = f"{diff.mean():+.3f} ± {diff.std(ddof=1) / np.sqrt(len(diff)):.3f}"
            cells.append("–" if arm == arms[0] else paired)
        lines.append(f"| {arm} | {t} | " + " | ".join(cells) + " |")
    exact = rows.exact_coverage.dropna().iloc[0] if rows.exact_coverage.notna().any() else np.nan
    return "\n".join(lines) + f"\n\nThe exact posterior covers {exact:.2f} of the same truths."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished workflow run's folder")
    parser.add_argument("simulator")
    parser.add_argument("out", type=Path)
    parser.add_argument("arms", nargs="+", type=parse_arm, metavar="NAME=JSON")
    parser.add_argument("--variant", default="nll-exp", help="LOSS-WEIGHTING (default nll-exp)")
    parser.add_argument(
        "--seeds", type=lambda text: [int(s) for s in text.split(",")], default=[0, 1, 2]
    )
    args = parser.parse_args(argv)
    results, simulator = args.run / "results", args.simulator
    base = yaml.safe_load((results / "settings" / simulator / "config.yaml").read_text())
    # the run's settings hold variant_overrides for the variants it trained only
    if not (results / "models" / simulator / args.variant).is_dir():
        raise SystemExit(
            f"the run trained no {args.variant!r} model of {simulator}; expected one of "
            + ", ".join(sorted(p.name for p in (results / "models" / simulator).iterdir()))
        )
    arms = dict(args.arms)
    if len(arms) < len(args.arms):
        raise SystemExit(f"arm names must differ, got {[name for name, _ in args.arms]}")
    jobs = list(itertools.product(arms, args.seeds))
    with ThreadPoolExecutor(2) as pool:
        finished = pool.map(
            lambda job: run_arm(
                results,
                simulator,
                args.variant,
                args.out / job[0] / f"seed{job[1]}",
                arm_config(base, simulator, arms[job[0]], args.variant),
                job[1],
            ),
            jobs,
        )
        finished = dict(zip(jobs, finished, strict=True))
    runs = results / "runs" / simulator
    mle = pd.read_parquet(runs / "mle" / "estimates.parquet")
    exact = pd.read_parquet(runs / "posterior" / "estimates.parquet")
    rows = []
    for (arm, seed), t in itertools.product(jobs, HORIZONS):
        scores = dict.fromkeys(["ratio", "coverage", "exact_coverage", "width"], np.nan)
        if finished[arm, seed]:
            estimates = pd.read_parquet(args.out / arm / f"seed{seed}" / f"est{t}.parquet")
            scores = score(estimates, mle, exact, simulator == "weinberg")
        rows.append({"arm": arm, "seed": seed, "t_test": t, **scores})
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "arms.csv", index=False)
    described = {"variant": args.variant, "arms": arms}
    (args.out / "arms.json").write_text(json.dumps(described, indent=1))
    print(summarise(table, list(arms)))


if __name__ == "__main__":
    main()
