"""The Snakemake workflow: job counts, lint, config errors and the conda environment in step
with pyproject.toml (a full run and its selective reruns: test_reruns.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
import yaml

from alfi.config import load_config, settings_for
from alfi.stages import STAGES, stage_settings, variants_for

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def test_dry_run_default_config(repository):
    counts = repository.dry_run("--config", "results=/tmp/alfi-dry-default")
    # 4 simulators; Poisson trains the 6 Appendix A variants, the others nll-exp; both T_test
    # from one evaluation of each model;
    # per simulator the exact posterior, the prior, the regressor and NPE for the one seed at 3
    # training sizes, and SMC-ABC at 2 budgets; 7 stage settings files per simulator (data,
    # evaluate, regressor, npe, abc_smc, reference, posterior) and a training one per variant
    # (each simulator's full settings file is no job: written when the workflow is parsed); a
    # code stamp per simulator and stage (9 stages), one each for the figures, the tables and
    # the timing table.
    assert counts == {
        "code_stamp": 36,
        "report_code_stamp": 3,
        "stage_settings": 28,
        "variant_settings": 9,
        "dataset": 8,
        "train": 9,
        "evaluate": 9,
        "mle": 4,
        "posterior": 4,
        "prior_mean": 4,
        "amortised": 24,
        "abc_smc": 8,
        "aggregate": 3,
        "figures": 1,
        "tables": 1,
        "timing": 1,
        "all": 1,
        "total": 153,
    }


def test_only_the_main_variant_is_scored_against_the_exact_posterior(repository):
    """The C2ST of ALFI's evaluation is the main variant's alone: no table shows another's."""
    printed = repository.run(
        "--dry-run", "--printshellcmds", "--config", "results=/tmp/alfi-dry-c2st"
    ).stdout
    evaluations = [line for line in printed.splitlines() if "alfi --quiet evaluate" in line]
    assert len(evaluations) == 9
    for line in evaluations:
        variant = re.search(r"models/\w+/([a-z-]+)/seed\d+\.pt", line)[1]
        assert ("--reference " in line) == (variant == "nll-exp"), line


def test_dry_run_paper_config(repository):
    counts = repository.dry_run(
        "--configfile", "configs/paper.yaml", "--config", "results=/tmp/alfi-dry-p"
    )
    # 4 simulators x 6 variants x 3 seeds = 72 models, trained 18 at a time (a simulator's grid in
    # one GPU job: resources.train_group_size), each tested once (both T_test); the regressor and
    # NPE for each simulator, seed and of 3 training sizes.
    groups = {rule: n for rule, n in counts.items() if rule.startswith("train")}
    simulators = ("poisson", "linear_regression", "multivariate", "weinberg")
    assert groups == {f"train_{s}_group0": 1 for s in simulators}
    assert counts["evaluate"] == 72 and counts["amortised"] == 72
    assert counts["abc_smc"] == 8 and counts["variant_settings"] == 24
    # 39 code stamps and the timing table, as in the default config
    assert counts["total"] == 306 - 72 + 39 + 1


def test_grouped_training_jobs(repository, tmp_path):
    """resources.train_group_size: the paper grid's 18 models per simulator in jobs of 6 (one
    rule per group, named after it); a real run of one group writes every member's model."""
    grouped = "resources={train_group_size: 6}"
    counts = repository.dry_run(
        "--configfile", "configs/paper.yaml", "--config", "results=/tmp/alfi-dry-g", grouped
    )
    groups = {rule: n for rule, n in counts.items() if rule.startswith("train")}
    expected = [f"train_{s}_group{k}" for s in ("poisson", "linear_regression") for k in range(3)]
    assert len(groups) == 12 and set(groups.values()) == {1} and set(expected) <= set(groups)
    assert counts["evaluate"] == 72 and counts["total"] == 306 - 72 - 4 + 12 + 39 + 1
    # A variant that variant_overrides sets apart trains apart: per simulator the one group it
    # shared (nll-exp and nll-const, 3 seeds each) splits in two; the other groups stay as
    # they were (their models keep their group, so they do not retrain).
    paper = ["--configfile", "configs/paper.yaml", "--config", "results=/tmp/alfi-dry-g", grouped]

    def poisson_groups(*extra: str) -> set[tuple[str, ...]]:
        printed = repository.run("--dry-run", "--printshellcmds", *paper, *extra).stdout
        pattern = r"--simulator poisson --variant ([a-z -]+?) --seed"
        return {tuple(m.split()) for m in re.findall(pattern, printed)}

    apart = "variant_overrides={nll-const: {train: {tail_steps: 2}}}"
    before, after = poisson_groups(), poisson_groups(apart)
    split = ("nll-exp",) * 3 + ("nll-const",) * 3
    assert split in before and len(before) == 3
    assert after == (before - {split}) | {("nll-exp",) * 3, ("nll-const",) * 3}
    lint = repository.run("--lint", "--config", grouped)
    assert "Congratulations" in lint.stdout + lint.stderr

    results = tmp_path / "results"
    models = [results / "models" / "weinberg" / "nll-exp" / f"seed{seed}.pt" for seed in (0, 1)]
    args = ["--configfile", "configs/tiny.yaml", "--config", f"results={results}", "seeds=[0,1]"]
    args += ["simulators=[weinberg]", "resources={train_group_size: 2}"]
    repository.run(*map(str, models), "--cores", "2", *args)
    fingerprints = set()
    for seed, model in enumerate(models):
        state = torch.load(model, map_location="cpu", weights_only=True)
        assert state["seed"] == seed and len(state["provenance"]["record"]["ensemble"]) == 2
        fingerprints.add(state["provenance"]["fingerprint"])
    assert len(fingerprints) == 2
    assert (results / "logs" / "train" / "weinberg_group0.log").is_file()


@pytest.mark.parametrize(
    "config_file", ["config.yaml", *sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))]
)
def test_a_config_file_is_complete_by_itself(repository, config_file, tmp_path):
    """What --configfile names is what runs: config.yaml is no base layer under it. The settings
    every job reads equal those the CLI reads from the same file."""
    path = ROOT / config_file if config_file == "config.yaml" else ROOT / "configs" / config_file
    expected = load_config(path)
    results = tmp_path / "results"
    stamps = {s: [stage for stage in STAGES if stage != "train"] for s in expected["simulators"]}
    for s in stamps:
        stamps[s] += [f"train_{variant}" for variant in variants_for(expected, s)]
    # The stamps are jobs; each simulator's settings file is written when the workflow is parsed.
    targets = [
        str(results / "settings" / s / f"{name}.yaml")
        for s in expected["simulators"]
        for name in stamps[s]
    ]
    named = [] if config_file == "config.yaml" else ["--configfile", str(path)]
    repository.run(*targets, "--cores", "1", *named, "--config", f"results={results}")
    for simulator in expected["simulators"]:
        folder = results / "settings" / simulator
        written = load_config(folder / "config.yaml")
        assert written["defaults"] == settings_for(expected, simulator)
        assert (written["seed"], written["device"]) == (expected["seed"], expected["device"])
        assert written["variant_overrides"] == {
            v: update
            for v, update in expected["variant_overrides"].items()
            if v in variants_for(expected, simulator)
        }
        for name in stamps[simulator]:
            variant = name.removeprefix("train_") if name.startswith("train_") else ""
            stage = "train" if variant else name
            stamp = yaml.safe_load((folder / f"{name}.yaml").read_text())
            assert stamp == stage_settings(expected, simulator, stage, variant or None)
            if variant:  # what the CLI resolves for that variant from the settings file
                assert (
                    stamp["train"] == stage_settings(written, simulator, "train", variant)["train"]
                )
    if config_file == "paper.yaml":  # once inherited config.yaml's laptop overrides (20 epochs)
        assert settings_for(expected, "linear_regression")["train"]["epochs"] == 300


def test_lint_is_clean(repository):
    result = repository.run("--lint")
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr


@pytest.mark.skipif(
    shutil.which("snakefmt", path=str(Path(sys.executable).parent)) is None,
    reason="snakefmt is not installed (pip install -e .[dev])",
)
def test_snakefmt_formatted():
    snakefmt = str(Path(sys.executable).parent / "snakefmt")
    files = ["Snakefile", *map(str, (ROOT / "workflow" / "rules").glob("*.smk"))]
    result = subprocess.run([snakefmt, "--check", *files], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=-1", "invalid config at 'seed': -1 is less than the minimum of 0"),
        ("device=tpu", "invalid config at 'device'"),
        ("bogus=1", "'bogus' was unexpected"),
        ("simulators=['gauss']", "unknown simulator 'gauss'"),
    ],
)
def test_invalid_config_stops_before_any_job(repository, override, message, tmp_path):
    result = repository.run("--dry-run", "--config", override, f"results={tmp_path}", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not any(tmp_path.iterdir())


HIDE_SBI = """
import sys


class HideSbi:
    def find_spec(self, name, path=None, target=None):
        if name == "sbi" or name.startswith("sbi."):
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")


sys.meta_path.insert(0, HideSbi())
"""


def test_a_method_without_its_package_stops_before_any_job(repository, tmp_path, monkeypatch):
    """A lean install (no baselines extra) runs any config that leaves out the methods needing
    it; one that names such a method stops before any job, naming the package and the fix."""
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "sitecustomize.py").write_text(HIDE_SBI)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "hide"))
    lean = repository.dry_run(
        "--config", "methods=[alfi,mle,prior_mean,regressor]", f"results={tmp_path / 'lean'}"
    )
    assert lean["amortised"] == 4 * 3 and "posterior" not in lean
    results = tmp_path / "results"  # nothing written there, not even the settings files
    result = repository.run(
        "--dry-run", "--config", "methods=[alfi,mle,npe]", f"results={results}", check=False
    )
    assert result.returncode != 0
    message = "'npe' needs the optional package sbi; install it with: pip install -e '.[baselines]'"
    assert message in result.stdout + result.stderr
    assert not results.exists()


@pytest.mark.parametrize("name, extras", [("alfi", []), ("baselines", ["baselines"])])
def test_conda_env_matches_pyproject(name, extras):
    """envs/alfi.yaml holds the package's dependencies; envs/baselines.yaml those and the
    baselines extra's."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + [
        d for extra in extras for d in project["optional-dependencies"][extra]
    ]
    env = yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())["dependencies"]
    rename = {"torch": "pytorch"}

    def parse(spec: str) -> tuple[str, str]:
        name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", spec).groups()
        return rename.get(name.lower(), name.lower()), version.replace(" ", "")

    conda = dict(
        parse(d) for d in env if isinstance(d, str) and not d.startswith(("python", "pip"))
    )
    assert conda == dict(parse(d) for d in wanted)


def test_make_run_takes_the_seeds():
    """``make run SEEDS=0,1,2`` passes the seeds to Snakemake (the README's columns over seeds);
    without SEEDS, config.yaml's."""

    def command(*args: str) -> str:
        # --no-print-directory: under `make test` this make is a sub-make, which would announce
        # its directory
        made = subprocess.run(
            ["make", "--no-print-directory", "-n", "run", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        (line,) = [line for line in made.stdout.splitlines() if "snakemake" in line]
        return line.strip()

    assert command("SEEDS=0,1,2").endswith('snakemake --cores all --config "seeds=[0,1,2]"')
    assert "--config" not in command()
