"""Column names of the tidy result tables (documented in :mod:`alfi.results`).

Kept free of heavy imports so readers of the tables (figures, tables) need only pandas.
"""

__all__ = ["KEYS", "ESTIMATE_COLUMNS", "METRIC_COLUMNS", "SAMPLE_COLUMNS", "MAIN_VARIANT"]

KEYS = ["simulator", "method", "variant", "seed", "problem", "t_test"]
ESTIMATE_COLUMNS = [*KEYS, "t", "parameter", "derived", "true", "estimate", "sigma", "fingerprint"]
METRIC_COLUMNS = [*KEYS, "metric", "value", "fingerprint"]
SAMPLE_COLUMNS = [*KEYS, "source", "coordinate", "value"]
#: The paper's choice (Appendix A): NLL loss, exponential weighting.
MAIN_VARIANT = "nll-exp"
