"""Column names of the tidy result tables, and the values their ``variant`` column takes.

The one home of these names (documented in :mod:`alfi.results`, which re-exports the column lists
for compatibility). Free of imports, so that readers of the tables (:mod:`alfi.metrics`,
:mod:`alfi.tables`, :mod:`alfi.figures`) need pandas alone, never torch. Not to be confused with
``alfi/schemas/``, the JSON schema of the configuration.
"""

__all__ = [
    "KEYS",
    "ESTIMATE_COLUMNS",
    "METRIC_COLUMNS",
    "SAMPLE_COLUMNS",
    "MAIN_VARIANT",
    "LOSSES",
    "WEIGHTINGS",
    "BASELINES",
    "METHODS",
]

#: What identifies a problem's run: one value of each per (run, problem).
KEYS = ["simulator", "method", "variant", "seed", "problem", "t_test"]
ESTIMATE_COLUMNS = [
    *KEYS,
    "t",
    "parameter",
    "derived",
    "true",
    "estimate",
    "sigma",
    "truth_quantile",
    "fingerprint",
]
METRIC_COLUMNS = [*KEYS, "metric", "value", "fingerprint"]
SAMPLE_COLUMNS = [*KEYS, "source", "coordinate", "value"]
#: The paper's choice (Appendix A): NLL loss, exponential weighting.
MAIN_VARIANT = "nll-exp"
#: An ALFI ``variant`` is ``LOSS-WEIGHTING``, in this order in tables and figures. The same tuples
#: as :mod:`alfi.losses` defines (a test checks), here so that reading a variant needs no torch.
LOSSES = ("mse", "nll")
WEIGHTINGS = ("last", "const", "exp")
#: Methods beside ALFI and the MLE (:mod:`alfi.baselines`): the exact posterior, the prior (the
#: negative control), ALFI's encoder as a regressor (the amortisation control), sbi's NPE and
#: sbi's SMC-ABC.
BASELINES = ("posterior", "prior_mean", "regressor", "npe", "abc_smc")
METHODS = ("alfi", "mle", *BASELINES)
