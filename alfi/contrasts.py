r"""Paired contrasts between ALFI variants over the seeds they share: the ablation's claims.

The paper's Appendix A claims that the NLL loss and the exponential weighting are best. For a
simulator trained with several variants (``LOSS-WEIGHTING``), at the ``t_test`` of
:func:`alfi.metrics.ablation_t_test`, let :math:`\bar r_{v,s}` be the mean final RMSE over the
test problems of variant :math:`v` trained with seed :math:`s`
(:func:`alfi.metrics.ablation_seed_means`). A contrast of :math:`a` against
:math:`b` pairs them by seed, :math:`d_s = \bar r_{a,s} - \bar r_{b,s}` over the :math:`S` seeds
both have, and gives

* ``mean`` :math:`\bar d` (negative: :math:`a` is the more accurate),
* ``se`` :math:`\mathrm{sd}(d) / \sqrt{S}` (``ddof=1``; NaN for one seed), its standard error,
* ``lower`` the number of seeds where :math:`d_s < 0`.

Two families: the loss at each weighting (``nll-W`` against ``mse-W``) and, with each loss, each
weighting against the exponential one (``L-W`` against ``L-exp``): seven contrasts on the
paper's grid. On three seeds the two-sided 5 % level is 4.3 standard errors (a t distribution
with 2 degrees of freedom); with no true difference one contrast passes 2.6 with probability
0.12, so among seven about one would. Pure pandas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from alfi.columns import LOSSES, WEIGHTINGS
from alfi.metrics import Horizon, ablation_seed_means, seed_spread

__all__ = [
    "CONTRAST_COLUMNS",
    "REFERENCE_LOSS",
    "REFERENCE_WEIGHTING",
    "variant_pairs",
    "ablation_contrasts",
]

CONTRAST_COLUMNS = ["simulator", "t_test", "first", "second", "mean", "se", "n_seeds", "lower"]

#: The loss and the weighting every other one is compared with: the paper's best.
REFERENCE_LOSS = "nll"
REFERENCE_WEIGHTING = "exp"


def variant_pairs(variants: set[str]) -> list[tuple[str, str]]:
    """The contrasts among ``variants``: ``(nll-W, L-W)`` for each weighting W and other loss
    L, then ``(L-W, L-exp)`` for each loss L and weighting W; only pairs whose variants both
    exist."""
    losses = [loss for loss in LOSSES if loss != REFERENCE_LOSS]
    pairs = [(f"{REFERENCE_LOSS}-{w}", f"{loss}-{w}") for w in WEIGHTINGS for loss in losses]
    pairs += [
        (f"{loss}-{w}", f"{loss}-{REFERENCE_WEIGHTING}")
        for loss in LOSSES
        for w in WEIGHTINGS
        if w != REFERENCE_WEIGHTING
    ]
    return [(a, b) for a, b in pairs if a in variants and b in variants]


def ablation_contrasts(estimates: pd.DataFrame, t_train: Horizon = 15) -> pd.DataFrame:
    """Every contrast of :func:`variant_pairs` on every simulator with several variants,
    paired over the seeds both variants have (columns :data:`CONTRAST_COLUMNS`)."""
    means = ablation_seed_means(estimates, t_train)
    rows = []
    for (sim, t_test), part in means.groupby(["simulator", "t_test"], sort=True):
        per_seed = part.pivot(index="variant", columns="seed", values="rmse")
        for first, second in variant_pairs(set(per_seed.index)):
            diff = (per_seed.loc[first] - per_seed.loc[second]).dropna()
            rows.append(
                {
                    "simulator": sim,
                    "t_test": int(t_test),
                    "first": first,
                    "second": second,
                    "mean": float(diff.mean()) if len(diff) else np.nan,
                    "se": seed_spread(diff) / np.sqrt(len(diff)) if len(diff) > 1 else np.nan,
                    "n_seeds": len(diff),
                    "lower": int((diff < 0).sum()),
                }
            )
    return pd.DataFrame(rows, columns=CONTRAST_COLUMNS)
