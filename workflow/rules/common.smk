# Shared helpers: config validation, output paths and the lists of runs.
import json
from pathlib import Path

from snakemake.utils import validate

from alfi.config import SCHEMA_PATH, settings_for, validate_config, variants_for

# alfi's validator first: one line naming the bad key; then Snakemake's own, which also fills
# the schema's defaults into the workflow config (the same schema, so it cannot disagree).
try:
    config = validate_config(config)
except ValueError as error:
    raise WorkflowError(str(error)) from None
validate(config, schema=str(SCHEMA_PATH))

RESULTS = config["results"]
SIMULATORS = config["simulators"]
SEEDS = config["seeds"]
T_TEST = config["t_test"]
TABLES = ["estimates", "metrics", "samples"]
RES = config["resources"]
GPU = RES["gpu"]
PACKAGE = Path(workflow.main_snakefile).parent / "alfi"


wildcard_constraints:
    simulator="[a-z][a-z0-9_]*",
    variant="(mse|nll)-(last|const|exp)",
    seed=r"\d+",
    t_test=r"\d+",
    split="train|test",
    table="estimates|metrics|samples",


def code(*modules):
    """Package modules a rule depends on, so that editing them reruns the rule (by mtime)."""
    return [str(PACKAGE / m) for m in modules]


def simulator_code(wildcards):
    """A built-in simulator's module (a plugin's lives outside the package and is not tracked)."""
    source = f"simulators/{wildcards.simulator}.py"
    return code(
        "simulators/base.py", *([source] if (PACKAGE / source).exists() else [])
    )


def canonical(value):
    """Keys sorted at every depth: Snakemake compares params as text, and the order of keys in
    config.yaml is no change of settings."""
    return json.loads(json.dumps(value, sort_keys=True))


def settings(simulator):
    """The resolved settings of one simulator, as a config file the CLI reads."""
    return canonical(
        {
            "results": RESULTS,
            "device": config["device"],
            "seed": config["seed"],
            "simulators": [simulator],
            "plugins": config["plugins"],
            "defaults": settings_for(config, simulator),
        }
    )


def data_settings(wildcards):
    """What a meta-dataset and the MLE on it depend on: the seed and the dataset sizes.

    Rules that read only these take the settings file as ancient() input and these as params,
    so new training settings do not redraw the data.
    """
    resolved = settings_for(config, wildcards.simulator)
    return canonical(
        {
            "seed": config["seed"],
            "dataset": resolved["dataset"],
            "histograms": resolved["evaluate"]["histograms"],
        }
    )


def runs():
    """(simulator, variant, seed) of every trained model."""
    return [
        (s, v, seed)
        for s in SIMULATORS
        for v in variants_for(config, s)
        for seed in SEEDS
    ]


def run_tables(table):
    alfi = [
        f"{RESULTS}/runs/{s}/{v}/seed{seed}/T{t}/{table}.parquet"
        for s, v, seed in runs()
        for t in T_TEST
    ]
    mle = [f"{RESULTS}/runs/{s}/mle/{table}.parquet" for s in SIMULATORS]
    return alfi + mle


FIGURE_KINDS = ["trajectory", "boxplot"]


def figure_files():
    names = [f"{s}_{k}" for s in SIMULATORS for k in FIGURE_KINDS]
    if "weinberg" in SIMULATORS:
        names += ["weinberg_histograms", "weinberg_asymmetry"]
    names += ["ablation", "calibration"]
    return [f"{RESULTS}/figures/{n}.{ext}" for n in names for ext in ("png", "pdf")]


def table_files():
    return [
        f"{RESULTS}/tables/{n}.{ext}"
        for n in ("summary", "ablation")
        for ext in ("md", "tex")
    ]


def all_outputs():
    return [f"{RESULTS}/{t}.parquet" for t in TABLES] + figure_files() + table_files()
