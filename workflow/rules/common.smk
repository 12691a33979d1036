# Shared helpers: config validation, output paths and the lists of runs.
import json
import os
import sys
from pathlib import Path

from snakemake.utils import validate

from alfi.config import (
    SCHEMA_PATH,
    read_yaml,
    settings_for,
    train_sizes,
    validate_config,
)
from alfi.stages import STAGES, stage_settings, training_sets, variants_for
from alfi.baselines import has_likelihood, missing_requirements
from alfi.columns import LOSSES, MAIN_VARIANT, WEIGHTINGS
from alfi.io import write_yaml
from alfi.provenance import STAGE_MODULES, code_stamp, stage_sources
from alfi.simulators import available, get_simulator
from alfi.schedule import total_steps, unrolled_updates

# alfi's validator first: one line naming the bad key; then Snakemake's own, which also fills
# the schema's defaults into the workflow config (the same schema, so it cannot disagree).
try:
    # Snakemake's own reader keeps the last of a key given twice; ours refuses it. Paths are
    # relative to where Snakemake was started.
    for path in workflow.configfiles:
        if Path(path).is_file():
            read_yaml(path)
    config = validate_config(config)
except ValueError as error:
    raise WorkflowError(str(error)) from None
validate(config, schema=str(SCHEMA_PATH))

# Jobs call the `alfi` command: the one installed beside the interpreter that runs Snakemake
# (`.venv/bin/snakemake` with the environment never activated, as `make run` does). Jobs that
# SLURM starts inherit this PATH; a conda environment (--sdm conda) puts its own first.
_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _BIN:
    os.environ["PATH"] = os.pathsep.join((_BIN, os.environ.get("PATH", "")))

RESULTS = config["results"]
SIMULATORS = config["simulators"]
METHODS = config["methods"]
SEEDS = config["seeds"]
T_TEST = config["t_test"]
TABLES = ["estimates", "metrics", "samples"]
RES = config["resources"]
GPU = RES["gpu"]


# Written when the workflow is parsed (write_settings_files), not by a job: see there.
SETTINGS = f"{RESULTS}/settings/{{simulator}}/config.yaml"
MODEL = f"{RESULTS}/models/{{simulator}}/{{variant}}/seed{{seed}}.pt"
ALFI_RUN = f"{RESULTS}/runs/{{simulator}}/{{variant}}/seed{{seed}}/T{{t_test}}/{{table}}.parquet"
# The digest of each stage's code, written by a job (rules code_stamp, report_code_stamp).
CODE = f"{RESULTS}/code_stamps/{{simulator}}/{{code_stage}}.yaml"
REPORT_CODE = f"{RESULTS}/code_stamps/{{report}}.yaml"
# Report stages: their stamps are per workflow, with the simulators they draw or bench.
REPORT_STAGES = ("figures", "tables", "timing", "bench")
# Outside the declared outputs: a failed or preempted job keeps it, and the rerun resumes.
CHECKPOINT = f"{RESULTS}/checkpoints/{{simulator}}/{{variant}}/seed{{seed}}.ckpt"


wildcard_constraints:
    simulator="|".join(available()),
    variant="|".join(
        f"{loss}-{weighting}" for loss in LOSSES for weighting in WEIGHTINGS
    ),
    seed=r"\d+",
    # the training stamp is per variant (rule variant_settings)
    stage="|".join(s for s in STAGES if s != "train"),
    code_stage="|".join(s for s in STAGE_MODULES if s not in REPORT_STAGES),
    report="|".join(REPORT_STAGES),
    t_test=r"\d+",
    split="train|test",
    table="|".join(TABLES),
    method="regressor|npe",
    budget=r"\d+",
    size=r"\d+",


def code_file(stage, simulator=None):
    """The code stamp of a stage of one simulator ({simulator} left a wildcard unless given)."""
    if simulator is None:
        return expand(CODE, code_stage=stage, allow_missing=True)[0]
    return expand(CODE, code_stage=stage, simulator=simulator)[0]


def report_code_file(stage):
    """The code stamp of a stage without a simulator (figures, tables, timing, bench)."""
    return expand(REPORT_CODE, report=stage)[0]


def stage_file(stage):
    """The settings stamp of one stage: rewritten, and so rerunning what reads it, exactly when
    the settings that stage depends on change (see alfi.stages.stage_settings)."""
    return expand(rules.stage_settings.output[0], stage=stage, allow_missing=True)[0]


def method_stage_file(wildcards):
    """Input function: the settings stamp of an amortised method's own stage ({method})."""
    return expand(
        rules.stage_settings.output[0],
        simulator=wildcards.simulator,
        stage=wildcards.method,
    )[0]


def train_stage_file(variant):
    """The training settings stamp of one variant's models ({simulator} left a wildcard): per
    variant, so that a variant_overrides entry retrains that variant's models alone."""
    return expand(
        rules.variant_settings.output[0], variant=variant, allow_missing=True
    )[0]


def split_file(split):
    """The dataset of one split, {simulator} left a wildcard."""
    return expand(rules.dataset.output[0], split=split, allow_missing=True)[0]


def canonical(value):
    """Keys sorted at every depth: Snakemake compares params as text, and the order of keys in
    config.yaml is no change of settings."""
    return json.loads(json.dumps(value, sort_keys=True))


def settings(simulator):
    """The resolved settings of one simulator, as a config file the CLI reads (SETTINGS). Rules
    read it as ancient() input: what they depend on is in their stage's settings stamp
    (stage_file).
    """
    return canonical(
        {
            "results": RESULTS,
            "device": config["device"],
            "cuda_graphs": config["cuda_graphs"],
            "seed": config["seed"],
            "simulators": [simulator],
            "plugins": config["plugins"],
            "defaults": settings_for(config, simulator),
            "variant_overrides": {
                v: update
                for v, update in config["variant_overrides"].items()
                if v in variants_for(config, simulator)
            },
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


def model_file(simulator, variant, seed):
    return expand(MODEL, simulator=simulator, variant=variant, seed=seed)[0]


def training_groups():
    """(simulator, index, members) of each training job: a simulator's models (variant, seed),
    variants outer and seeds inner, in groups of resources.train_group_size; a group whose
    variants variant_overrides sets apart is split by training settings, so an override
    regroups only the models that shared a group with that variant."""
    size = RES["train_group_size"]
    groups = []
    for s in SIMULATORS:
        members = [(v, seed) for v in variants_for(config, s) for seed in SEEDS]
        chunks = [
            group
            for start in range(0, len(members), size)
            for group in training_sets(config, s, members[start : start + size])
        ]
        groups.extend((s, index, chunk) for index, chunk in enumerate(chunks))
    return groups


# Priorities are not passed on to a job's inputs: the quick jobs every other waits on (settings
# stamps, datasets) go first, or a long training of one simulator holds a core while another
# simulator's longer training still waits on its settings file.
SETUP_PRIORITY = 10**6


def training_updates(simulator, variant):
    """Meta-training updates of one model per training problem (every step's unroll, the
    tail's as the schedule grows it): its job's priority, so the longest trainings start first
    and the short jobs fill the cores around them instead of a long training ending the run
    alone on one core."""
    settings = settings_for(config, simulator, variant)
    n_train = settings["dataset"]["n_train"]
    total = total_steps(settings, n_train)[1]
    return round(
        unrolled_updates(settings["train"], total, total)
        * settings["train"]["meta_batch"]
        / n_train
    )


def posterior_simulators():
    """Simulators whose exact posterior is computed: those with a log-likelihood (a plugin may
    have none; the workflow says so when it starts)."""
    if "posterior" not in METHODS:
        return []
    return [s for s in SIMULATORS if has_likelihood(get_simulator(s))]


def c2st_enabled(simulator):
    """Whether the methods with draws are compared with the exact posterior's by C2ST."""
    ev = settings_for(config, simulator)["evaluate"]
    return (
        simulator in posterior_simulators()
        and ev["draws"] > 0
        and ev["c2st_problems"] > 0
    )


def reference_draws(wildcards):
    """Input function: the exact posterior's draws, where a C2ST needs them."""
    if c2st_enabled(wildcards.simulator):
        return expand(rules.posterior.output.draws, simulator=wildcards.simulator)
    return []


def alfi_reference_draws(wildcards):
    """Input function: the exact posterior's draws for ALFI's main variant alone; the tables and
    figures show no other variant's C2ST (about 9 s of each ablation variant's evaluation).
    """
    if wildcards.variant != MAIN_VARIANT:
        return []
    return reference_draws(wildcards)


def reference_option(wildcards, input):
    return f"--reference {input.reference}" if input.reference else ""


def method_jobs():
    """(rule, wildcards) of every job that writes a method's run tables, in the order the
    aggregated tables list them (called where the rules it names are defined: in input
    functions, and by the timing rule, which is defined last).
    """
    jobs = []
    if "alfi" in METHODS:
        jobs += [
            ("evaluate", dict(simulator=s, variant=v, seed=seed))
            for s, v, seed in runs()
        ]
    for method in ("mle", "prior_mean"):
        if method in METHODS:
            jobs += [(method, dict(simulator=s)) for s in SIMULATORS]
    jobs += [("posterior", dict(simulator=s)) for s in posterior_simulators()]
    if "abc_smc" in METHODS:
        jobs += [
            ("abc_smc", dict(simulator=s, budget=budget))
            for s in SIMULATORS
            for budget in settings_for(config, s)["baselines"]["abc_smc"]["budgets"]
        ]
    for method in ("regressor", "npe"):
        if method in METHODS:
            jobs += [
                ("amortised", dict(simulator=s, method=method, size=size, seed=seed))
                for s in SIMULATORS
                for size in train_sizes(settings_for(config, s))
                for seed in SEEDS
            ]
    return jobs


def run_tables(table):
    """One `table` of every run of the methods the config names, to aggregate (an input
    function: the rules it names are defined by then)."""
    paths = []
    for rule, wildcards in method_jobs():
        names = [f"{table}_T{t}" for t in T_TEST] if rule == "evaluate" else [table]
        outputs = getattr(rules, rule).output
        paths += [expand(outputs[name], **wildcards)[0] for name in names]
    return paths


def job_benchmarks():
    """The benchmark file of every job that makes the run's tables (the timing job reads them):
    the meta-datasets, ALFI's trainings, every method's runs and the aggregation. The stamps
    and the reports are left out: seconds each, and the reports would rerun the timing.
    """
    jobs = []
    if "alfi" in METHODS:
        if RES["train_group_size"] == 1:
            jobs += [
                ("train", dict(simulator=s, variant=v, seed=seed))
                for s, v, seed in runs()
            ]
        else:
            jobs += [
                (f"train_{s}_group{index}", dict(simulator=s))
                for s, index, _ in training_groups()
            ]
    jobs += method_jobs()
    # a split's dataset where a listed job reads it: the test split every method's runs, the
    # training split ALFI's trainings and the amortised methods'
    trained = {
        w["simulator"]
        for rule, w in jobs
        if rule.startswith("train") or rule == "amortised"
    }
    tested = {w["simulator"] for rule, w in jobs if not rule.startswith("train")}
    datasets = [
        ("dataset", dict(simulator=s, split=split))
        for s in SIMULATORS
        for split, readers in (("train", trained), ("test", tested))
        if s in readers
    ]
    jobs = datasets + jobs + [("aggregate", dict(table=table)) for table in TABLES]
    return [
        expand(getattr(rules, rule).benchmark, **wildcards)[0]
        for rule, wildcards in jobs
    ]


def histogram_simulators():
    """Simulators drawn as histograms (as alfi.figures.write_figures decides from the samples):
    some test problems keep their observations (evaluate.histograms > 0), each one number.
    """
    return [
        s
        for s in SIMULATORS
        if settings_for(config, s)["evaluate"]["histograms"] > 0
        and get_simulator(s).observation_dim == 1
    ]


def derived_simulators(quantity):
    """Simulators that report the derived quantity `quantity` (Weinberg's asymmetry)."""
    simulators = [get_simulator(s) for s in SIMULATORS]
    return [s.name for s in simulators if quantity in s.derived(s.prior_moments()[0])]


def figures_by_kind():
    """Figure kind (which names its report caption) to the figure files of that kind."""
    kinds = {
        kind: [f"{s}_{kind}" for s in SIMULATORS] for kind in ("trajectory", "boxplot")
    }
    kinds["histograms"] = [f"{s}_histograms" for s in histogram_simulators()]
    kinds["asymmetry"] = [f"{s}_asymmetry" for s in derived_simulators("asymmetry")]
    kinds |= {
        "ablation": ["ablation"],
        "calibration": ["calibration"],
        "methods": ["methods"],
    }
    return {
        kind: [f"{RESULTS}/figures/{n}.{ext}" for n in names for ext in ("png", "pdf")]
        for kind, names in kinds.items()
    }


def readme_figures():
    """The figures the README shows, of the simulators this config runs."""
    shown = [
        "poisson_trajectory",
        "poisson_boxplot",
        "linear_regression_trajectory",
        "weinberg_histograms",
        "methods",
    ]
    made = {Path(f).stem for f in figure_files()}
    return [f"{RESULTS}/figures/{n}.png" for n in shown if n in made]


def figure_files():
    return [f for files in figures_by_kind().values() for f in files]


def table_files():
    return [
        f"{RESULTS}/tables/{n}.{ext}"
        for n in ("summary", "ablation", "ablation_contrasts", "methods")
        for ext in ("md", "tex")
    ]


def all_outputs():
    """What `all` makes: the aggregated tables, the figures, the summary tables and where the
    run's time went."""
    return [
        *expand(rules.aggregate.output[0], table=TABLES),
        *rules.figures.output,
        *rules.tables.output,
        *rules.timing.output,
    ]


# A method (or the C2ST) whose optional package is missing stops the run before any job.
C2ST = any(c2st_enabled(s) for s in SIMULATORS)
_missing = missing_requirements(METHODS + (["c2st"] if C2ST else []))
if _missing:
    raise WorkflowError("; ".join(_missing))
for _name in sorted(set(SIMULATORS) - set(posterior_simulators())):
    if "posterior" in METHODS:
        logger.warning(
            f"method posterior: not run for {_name}, which has no log_likelihood "
            "(nor, then, the C2ST of its methods)"
        )
# The C2ST of ALFI's evaluations needs sbi: the baselines environment then.
EVALUATE_ENV = "../../envs/baselines.yaml" if C2ST else "../../envs/alfi.yaml"


def write_settings_files():
    """Write each simulator's SETTINGS file where it is missing or differs from the config.

    Not a job, on purpose: a job whose params changed masks every job downstream of it in
    Snakemake's rerun check (9.27, snakemake/snakemake#4166), and the jobs that read its output
    as ancient() input are then never checked for their own reasons to run, a missing output
    included. A settings-only change (checkpoint_every) together with a new seed or variant ran
    the settings job alone and stopped; the new models came only with a second invocation.
    Written here, the file is a source every job finds ready, and a change of it reruns nothing:
    what a job depends on is in its stage stamp. The content is a function of the config alone
    (the same text in every process that parses the workflow, a cluster job's included), written
    atomically and only when it differs."""
    for simulator in SIMULATORS:
        write_yaml(
            expand(SETTINGS, simulator=simulator)[0],
            settings(simulator),
            unless_same=True,
        )


write_settings_files()


def stage_code_stamp(simulator, stage):
    """The code stamp of one stage of one simulator (rule code_stamp's params)."""
    return code_stamp(stage_sources(get_simulator(simulator), stage))


def report_code_stamp(stage):
    """The code stamp of a report stage (rule report_code_stamp's params), with the code of the
    simulators it draws: the histograms draw each one's exact density, the bench runs
    configs/paper.yaml's."""
    drawn = {
        "figures": histogram_simulators(),
        "tables": [],
        "timing": [],
        "bench": read_yaml("configs/paper.yaml")["simulators"],
    }[stage]
    sources = stage_sources(stage=stage)
    for name in drawn:
        sources.update(stage_sources(get_simulator(name)))
    return code_stamp(sources)
