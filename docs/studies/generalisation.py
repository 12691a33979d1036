r"""Does a trained machine generalise? Its error and calibration along the iterations, on the
problems it was trained on and on the test problems, for one proposal and for the K-init mixture.

For each step :math:`t` of one unroll of ``T`` updates from ``K`` initial proposals per problem
(the evaluation's protocol, its own seed), over the first ``--problems`` problems of each split:

* ``cov1``: coverage of the central 90 % interval of a single proposal,
  :math:`|\mu_{t,k} - \theta^*| \le 1.645\,\sigma_{t,k}`, over problems, inits and parameters;
* ``covK``: the same for the Gaussian with the K-init mixture's mean and variance (what the
  workflow's coverage reads, there from draws of the mixture);
* ``rmse``: RMSE of the mixture mean; ``sd``: mean single-proposal :math:`\sigma`; ``spread``:
  mean sd of the K means; ``z50``: median of :math:`|\mu - \theta^*| / \sigma` over single
  proposals (0.674 for calibrated Gaussian errors);
* ``ratio``: mean per-problem RMSE of the mixture mean / the MLE's on the same problems.

A machine that learnt its training problems shows a lower error and wider-than-needed intervals
on them than on the test problems; the same numbers on both splits mean it generalises.

    python docs/studies/generalisation.py RESULTS SIMULATOR [--model PATH] [--seed 0] [--steps 30]

``RESULTS`` is a workflow results folder (its ``data/`` and ``models/``); ``--model`` reads another
model of that simulator (default: the folder's nll-exp model of ``--seed``). Prints a Markdown
table per split. (Weinberg's ``ratio`` is on θ, which is not identifiable.)
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from alfi.data import make_generator
from alfi.evaluate_alfi import unroll_inits
from alfi.io import MetaDataset, load_dataset
from alfi.model import ALFI
from alfi.simulators import Simulator, get_simulator
from alfi.train import load_model

Z90 = 1.6448536269514722
ROWS = (5, 10, 15, 20, 25, 30)


@torch.no_grad()
def profile(
    model: ALFI,
    simulator: Simulator,
    data: MetaDataset,
    settings: dict,
    *,
    steps: int,
    inits: int,
    seed: int,
) -> dict[str, list]:
    """Per step ``t`` of :data:`ROWS` (up to ``steps``): the columns of the module docstring.
    ``settings``: the model's training settings (``initial_log_scale``, ``n_theta``, ``n_sim``)."""
    mu, sd = unroll_inits(  # (T + 1, N, K, D) each
        model,
        simulator,
        data.x,
        steps=steps,
        inits=inits,
        n_theta=settings["n_theta"],
        n_sim=settings["n_sim"],
        generator=make_generator(seed),
        initial_log_scale=settings["initial_log_scale"],
    )
    truth = data.theta.unsqueeze(1)  # (N, 1, D)
    mle = simulator.mle(data.x.double()).float()
    table: dict[str, list] = {k: [] for k in ("t", "cov1", "covK", "rmse", "sd", "spread", "z50")}
    table["ratio"] = []
    for t in (t for t in ROWS if t <= steps):
        error = mu[t] - truth
        estimate = mu[t].mean(1)
        mixture_sd = (sd[t] ** 2 + (mu[t] - estimate.unsqueeze(1)) ** 2).mean(1).sqrt()
        table["t"].append(t)
        table["cov1"].append((error.abs() <= Z90 * sd[t]).float().mean().item())
        table["covK"].append(
            ((estimate - data.theta).abs() <= Z90 * mixture_sd).float().mean().item()
        )
        table["rmse"].append(((estimate - data.theta) ** 2).mean().sqrt().item())
        table["sd"].append(sd[t].mean().item())
        table["spread"].append(mu[t].std(1).mean().item())
        table["z50"].append((error.abs() / sd[t]).median().item())
        alfi_error = ((estimate - data.theta) ** 2).mean(-1).sqrt().mean()
        mle_error = ((mle - data.theta) ** 2).mean(-1).sqrt().mean()
        table["ratio"].append((alfi_error / mle_error).item())
    return table


def markdown(table: dict[str, list]) -> str:
    keys = list(table)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---:|" * len(keys)]
    for row in zip(*table.values(), strict=True):
        cells = (f"{v}" if k == "t" else f"{v:.4g}" for k, v in zip(keys, row, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("simulator")
    parser.add_argument("--model", type=Path)
    parser.add_argument("--seed", type=int, default=0, help="the model's training seed")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--inits", type=int, default=20)
    parser.add_argument("--problems", type=int, default=200, help="first N of each split")
    parser.add_argument("--draw-seed", type=int, default=123, help="seed of the unroll's draws")
    args = parser.parse_args()
    simulator = get_simulator(args.simulator)
    path = args.model or args.results / f"models/{args.simulator}/nll-exp/seed{args.seed}.pt"
    model, saved = load_model(path)
    for split in ("train", "test"):
        data = load_dataset(args.results / f"data/{args.simulator}/{split}.npz", simulator)
        first = slice(0, args.problems)
        data = dataclasses.replace(data, x=data.x[first], theta=data.theta[first])
        table = profile(
            model,
            simulator,
            data,
            saved["settings"]["train"],
            steps=args.steps,
            inits=args.inits,
            seed=args.draw_seed,
        )
        print(f"\n{args.simulator}, {path}, {split} problems ({len(data)}):\n")
        print(markdown(table))


if __name__ == "__main__":
    main()
