"""Score-gradient study (issue 9, item 4): why the constant weighting diverged on a long unroll.

With 15 updates past the horizon (``train.tail_steps: 15, tail_weight: 1/3``) the Poisson
ablation's const-weighted variants stopped with "the proposal became non-finite" on three of
their six seeds 1 and 2. The network reads the proposal's whitened score
:math:`\\epsilon = (\\theta - \\mu) / \\sigma` at draws :math:`\\theta` that carry no gradient, so
the backward pass through that input has :math:`\\partial\\epsilon / \\partial\\mu = -1/\\sigma`:
a factor that grows as the proposal contracts, once per unrolled update. This study retrains
those variants on the workflow's own Poisson training set and seeds (``config.yaml``'s settings
and the derived dataset and run seeds of ``alfi dataset`` and ``alfi train``), with the tail of
:data:`LONG_TAIL`, under each ``model.score_gradient``: ``full`` (the default: through the
mean and the scale), ``scale`` (through :math:`\\log\\sigma` only) and ``none`` (the score read as
data), and records every step's global gradient norm before clipping (``train.grad_clip``
clips it to 1). Whether the main variant still learns under the other two is
measured by ``docs/studies/accuracy.py`` (candidates ``...+tail15w+scalegrad`` and
``...+tail15w+scoredata``).

    python docs/studies/score_gradient.py --out docs/studies/score_gradient

Writes ``OUT/score_gradient.csv`` (one row per run) and ``OUT/summary.md``.
"""

from __future__ import annotations

import argparse
import copy
import os
from multiprocessing import Pool
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from alfi.config import load_config, settings_for  # noqa: E402
from alfi.data import make_dataset  # noqa: E402
from alfi.model import SCORE_GRADIENTS  # noqa: E402
from alfi.seeds import derive_seed  # noqa: E402
from alfi.simulators import get_simulator  # noqa: E402
from alfi.train import TrainingDivergedError, train  # noqa: E402

VARIANTS = ("nll-const", "mse-const")
SEEDS = (0, 1, 2)
SIMULATOR = "poisson"
ROOT = Path(__file__).resolve().parents[2]
#: The options this study compared; ``bounded`` came later (accuracy.md, "The const
#: weighting without collapses", with docs/studies/arms.py).
STUDIED = ("full", "scale", "none")
#: The spread tail under which the const variants diverged (config.yaml then gave them 5 tail
#: updates through variant_overrides).
LONG_TAIL = {"tail_steps": 15, "tail_weight": 1 / 3}


def run(variant: str, seed: int, score_gradient: str) -> dict:
    """Train one model as the workflow would, with ``score_gradient``; the norms
    of the gradients before clipping come from wrapping ``torch.nn.utils.clip_grad_norm_``
    (what ``alfi.meta_step.apply_gradients`` calls)."""
    torch.set_num_threads(1)
    config = load_config(ROOT / "config.yaml")
    settings = copy.deepcopy(settings_for(config, SIMULATOR))
    settings["train"].update(LONG_TAIL)
    settings["model"]["score_gradient"] = score_gradient
    sizes = settings["dataset"]
    simulator = get_simulator(SIMULATOR)
    data_seed = derive_seed(config["seed"], "dataset", SIMULATOR, "train")
    data = make_dataset(simulator, sizes["n_train"], sizes["n_real"], data_seed)
    norms: list[float] = []
    clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm, *args, **kwargs):
        norm = clip(parameters, max_norm, *args, **kwargs)
        norms.append(float(norm))
        return norm

    torch.nn.utils.clip_grad_norm_ = recording_clip
    error = ""
    try:
        result = train(
            simulator,
            data,
            settings,
            variant=variant,
            seed=derive_seed(config["seed"], "run", seed),
            progress=False,
        )
        losses = [h["loss"] for h in result.history]
    except TrainingDivergedError as exc:
        error, losses = str(exc).split(":")[0], []
    finally:
        torch.nn.utils.clip_grad_norm_ = clip
    grad = np.asarray(norms)
    finite = grad[np.isfinite(grad)]
    return {
        "variant": variant,
        "seed": seed,
        "score_gradient": score_gradient,
        "steps": len(grad),
        "stopped": error,
        "grad_median": float(np.median(finite)),
        "grad_p99": float(np.quantile(finite, 0.99)),
        "grad_max": float(grad.max()),
        "steps_over_1e4": int((grad > 1e4).sum()),
        "final_loss": losses[-1] if losses else float("nan"),
    }


def summarise(table: pd.DataFrame) -> str:
    order = {name: i for i, name in enumerate(SCORE_GRADIENTS)}
    table = table.assign(order=table["score_gradient"].map(order))
    table = table.sort_values(["order", "variant", "seed"]).drop(columns="order")
    return table.to_markdown(index=False, floatfmt=".3g") + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/studies/score_gradient"))
    parser.add_argument("--jobs", type=int, default=2, help="trainings side by side")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [(v, s, g) for g in STUDIED for v in VARIANTS for s in SEEDS]
    with Pool(args.jobs) as pool:
        rows = pool.starmap(run, runs)
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "score_gradient.csv", index=False)
    (args.out / "summary.md").write_text(summarise(table))
    print(summarise(table))


if __name__ == "__main__":
    main()
