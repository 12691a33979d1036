"""NPE budget study (issue 10): is sbi's NPE a sound baseline, and how does it improve with data?

For Poisson and the README's plug-in example ``gaussian_mean`` (each with an exact posterior),
train NPE (:mod:`alfi.npe`, the laptop settings of ``config.yaml`` with the ``baselines.npe``
keys of one of :data:`TRAININGS`) on training meta-datasets of ``--sizes`` problems (200 real
observations each) and measure, on the same 100 test problems: the mean final RMSE over the
MLE's, the coverage of the central 90 % interval of 1000 draws (binomial sd 0.03 at 100
problems) and the C2ST against the exact posterior (first 20 problems).

    python docs/studies/npe_budget.py --out docs/studies/npe_budget
    python docs/studies/npe_budget.py --out docs/studies/npe_calibration --sizes 1000 \
        --trainings nsf-b64,nsf-b64-long,mdn-b64,mdn-b16,nsf-b16

``--trainings`` names NPE trainings (:data:`TRAININGS`): the density estimator (sbi's neural
spline flow or mixture density network), its batch and learning rate, and sbi's early-stopping
patience (``long`` waits five times as long for an improvement). Beside NPE's coverage, the
exact posterior's own coverage on the same problems and the median ratio of the widths of NPE's
and the exact posterior's central 90 % intervals (above 1: too wide).

Rows are appended to ``OUT/npe_budget.csv`` as runs finish; a rerun skips the (simulator, size,
training, seed) runs already there. ``OUT/summary.md`` is rewritten from all rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from alfi.calibration import c2st  # noqa: E402
from alfi.config import load_config, settings_for  # noqa: E402
from alfi.data import make_dataset, make_generator  # noqa: E402
from alfi.evaluate import run_mle, truth_quantiles  # noqa: E402
from alfi.io import atomic_path  # noqa: E402
from alfi.npe import fit_npe, run_npe  # noqa: E402
from alfi.reference import run_reference  # noqa: E402
from alfi.seeds import derive_seed  # noqa: E402
from alfi.simulators import get_simulator  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
N_TEST, N_REAL, DRAWS, C2ST_PROBLEMS = 100, 200, 1000, 20
#: The workflow's NPE training until the calibration study (docs/studies/npe_budget.md).
_NSF_B64 = {
    "density": "nsf",
    "lr": 5.0e-4,
    "batch": 64,
    "stop_after_epochs": 20,
    "max_epochs": 300,
    "pooling": "mean",
}
#: NPE trainings compared, each fully specified (``baselines.npe`` keys) so that a row keeps its
#: meaning when config.yaml's defaults change: the density estimator, the optimiser's step and
#: batch, how long sbi waits for a better validation loss, and how the embedding pools.
#: ``mdn-b16`` was config.yaml's setting after the calibration study.
TRAININGS = {
    "nsf-b64": _NSF_B64,
    "nsf-b64-long": _NSF_B64 | {"stop_after_epochs": 100, "max_epochs": 2000},
    "mdn-b64": _NSF_B64 | {"density": "mdn"},
    "mdn-b16": _NSF_B64 | {"density": "mdn", "lr": 2.0e-3, "batch": 16, "stop_after_epochs": 50},
    "nsf-b16": _NSF_B64 | {"lr": 1.0e-3, "batch": 16, "stop_after_epochs": 50},
}
#: config.yaml's NPE since its embedding pools by the mean and the max (README, "Baselines").
TRAININGS["mdn-b16-meanmax"] = TRAININGS["mdn-b16"] | {"pooling": "mean-max"}
#: The same, waiting twice as long for a better validation loss: does training time alone bring
#: its intervals into the 85-95 % band?
TRAININGS["mdn-b16-meanmax-long"] = TRAININGS["mdn-b16-meanmax"] | {
    "stop_after_epochs": 100,
    "max_epochs": 1000,
}
#: The adopted training on unsquashed observations: is asinh's distortion of the counts (whose
#: mean is Poisson's sufficient statistic) what keeps the intervals wide?
TRAININGS["mdn-b16-meanmax-raw"] = TRAININGS["mdn-b16-meanmax"] | {"squash": "none"}
#: Fewer Gaussians in the mixture (sbi's default, and the arms above: 10): does a mixture spread
#: over components widen the intervals of a posterior that is one Gaussian bump?
TRAININGS["mdn-b16-meanmax-k1"] = TRAININGS["mdn-b16-meanmax"] | {"components": 1}
TRAININGS["mdn-b16-meanmax-k3"] = TRAININGS["mdn-b16-meanmax"] | {"components": 3}
#: The adopted training, then on at a tenth of the rate until 20 epochs bring no improvement.
TRAININGS["mdn-b16-meanmax-anneal"] = TRAININGS["mdn-b16-meanmax"] | {
    "anneal": {"factor": 0.1, "stop_after_epochs": 20}
}
#: The adopted training with the first phase's patience cut from 50 epochs to 20: its epochs are
#: the default run's largest baseline cost; does the anneal make up for stopping earlier?
TRAININGS["mdn-b16-meanmax-anneal-p20"] = TRAININGS["mdn-b16-meanmax-anneal"] | {
    "stop_after_epochs": 20
}


def _load_plugin() -> None:
    """Register ``gaussian_mean``: the README's plug-in example, run as the README shows it."""
    text = (ROOT / "README.md").read_text()
    code = text.split("<!-- plugin-example -->\n```python\n", 1)[1].split("```", 1)[0]
    spec = importlib.util.spec_from_loader("readme_plugin", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["readme_plugin"] = module
    exec(compile(code, "README.md (plugin example)", "exec"), module.__dict__)


def _width90(draws: torch.Tensor) -> torch.Tensor:
    """The width of the central 90 % interval of ``draws`` ``(N, S, D)``: ``(N, D)``. (Not the
    standard deviation: a flow's few far-tail draws inflate that and change no interval.)"""
    low, high = torch.quantile(draws.double(), torch.tensor([0.05, 0.95]).double(), dim=1)
    return high - low


def run(name: str, size: int, seed: int, training: str) -> dict:
    sim = get_simulator(name)
    settings = settings_for(load_config(ROOT / "config.yaml"), "poisson")
    settings["baselines"]["npe"] |= TRAININGS[training]
    test = make_dataset(sim, N_TEST, N_REAL, seed=derive_seed(0, "study-test", name))
    train = make_dataset(sim, size, N_REAL, seed=derive_seed(seed, "study-train", name))
    start = time.perf_counter()
    npe, cost = fit_npe(sim, train, settings, seed=seed, device=torch.device("cpu"))
    result = run_npe(npe, sim, test, make_generator(seed), seed=seed, draws=DRAWS)
    exact = run_reference(sim, test, make_generator(1), draws=DRAWS)
    mle = run_mle(sim, test, make_generator(2))

    def rmse(trajectory) -> float:
        return float(((trajectory.estimate[-1] - test.theta) ** 2).mean(-1).sqrt().mean())

    q = truth_quantiles(sim, result.draws, test.theta.double())[:, : sim.theta_dim]
    q_exact = truth_quantiles(sim, exact.draws, test.theta.double())[:, : sim.theta_dim]
    width = (_width90(result.draws) / _width90(exact.draws)).median()
    accuracy = c2st(result.draws[:C2ST_PROBLEMS].numpy(), exact.draws[:C2ST_PROBLEMS].numpy())
    return {
        "simulator": name,
        "n_train": size,
        "training": training,
        "seed": seed,
        "train_simulations": cost["train_simulations"],
        "npe_over_mle": rmse(result) / rmse(mle),
        "posterior_over_mle": rmse(exact) / rmse(mle),
        "coverage90": float((np.abs(q - 0.5) <= 0.45).mean()),
        "posterior_coverage90": float((np.abs(q_exact - 0.5) <= 0.45).mean()),
        "width90_over_exact": float(width),
        "c2st": float(accuracy.mean()),
        "seconds": time.perf_counter() - start,
        "epochs": npe.epochs,
    }


def summarise(rows: pd.DataFrame) -> str:
    extra = {
        name: (name, "mean")
        for name in ("posterior_coverage90", "width90_over_exact")
        if name in rows and rows[name].notna().any()
    }
    table = rows.groupby(["simulator", "n_train", "training"]).agg(
        seeds=("seed", "nunique"),
        npe_over_mle=("npe_over_mle", "mean"),
        npe_over_mle_sd=("npe_over_mle", "std"),
        posterior_over_mle=("posterior_over_mle", "mean"),
        coverage90=("coverage90", "mean"),
        coverage90_sd=("coverage90", "std"),
        c2st=("c2st", "mean"),
        c2st_sd=("c2st", "std"),
        **extra,
        seconds=("seconds", "mean"),
        **({"epochs": ("epochs", "mean")} if "epochs" in rows else {}),
    )
    return table.reset_index().to_markdown(index=False, floatfmt=".3g") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "studies" / "npe_budget")
    parser.add_argument("--sizes", default="250,1000,4000")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--simulators", default="poisson,gaussian_mean")
    parser.add_argument("--trainings", default="nsf-b64", help=f"of {sorted(TRAININGS)}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    _load_plugin()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "npe_budget.csv"
    done = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if not done.empty and "training" not in done:
        done = done.assign(training="nsf-b64")  # written before trainings were compared
    runs = [
        (name, size, training, seed)
        for name in args.simulators.split(",")
        for size in map(int, args.sizes.split(","))
        for training in args.trainings.split(",")
        for seed in map(int, args.seeds.split(","))
    ]
    for name, size, training, seed in runs:
        key = (name, size, training, seed)
        if not done.empty and key in set(
            zip(done.simulator, done.n_train, done.training, done.seed, strict=True)
        ):
            continue
        row = pd.DataFrame([run(name, size, seed, training)])
        print(row.to_string(index=False, header=done.empty), flush=True)
        done = pd.concat([done, row], ignore_index=True)
        with atomic_path(path) as tmp:
            done.to_csv(tmp, index=False)
    (args.out / "summary.md").write_text(summarise(done))
    print(summarise(done))


if __name__ == "__main__":
    main()
