"""The Snakemake workflow run for real on the tiny config, then each kind of change reruns the
jobs that depend on it and nothing else. Alone in its module so that pytest-xdist's
``--dist loadfile`` can run it beside the SLURM tests, the two longest."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import yaml

from alfi.stages import variants_for

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


def _edit_config(project: Path, edit) -> dict:
    path = project / "configs" / "tiny.yaml"
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config))
    return config


#: One simulator's jobs from its data on (one model, one training size, one ABC budget).
CHAIN = dict(
    dataset=2, mle=1, train=1, evaluate=1, posterior=1, prior_mean=1, amortised=1, abc_smc=1
)


def _downstream(**jobs: int) -> dict[str, int]:
    """Dry-run counts of a change whose jobs are ``jobs``, plus the aggregation, the reports
    and the timing table (it follows the aggregation, and reads the rerun jobs' times)."""
    counts = {**jobs, "aggregate": 3, "figures": 1, "tables": 1, "timing": 1, "all": 1}
    return {**counts, "total": sum(counts.values())}


def test_tiny_workflow_runs_and_reruns_only_what_changed(
    project, check_results, readme_plugin, tmp_path
):
    """One run of the tiny config with a plugin simulator, then each kind of change reruns the
    jobs that depend on it, all of them in one invocation, and nothing else. NPE is left out
    (ten seconds a job): it runs in the regressor's rule (``amortised``), so its reruns are the
    regressor's, and tests/test_slurm.py runs it through the workflow."""
    (project.root / "my_simulators.py").write_text(readme_plugin)
    config = _edit_config(
        project.root,
        lambda c: c.update(
            plugins=["my_simulators"],
            simulators=[*c["simulators"], "gaussian_mean"],
            methods=[m for m in c["methods"] if m != "npe"],
        ),
    )
    results = tmp_path / "results"
    common = ["--configfile", "configs/tiny.yaml", "--config", f"results={results}"]
    project.run("--cores", "2", *common)
    check_results(results, config["simulators"], config["t_test"], config["methods"])
    for log in (results / "logs" / "train").glob("*.log"):
        assert "device cpu" in log.read_text()
    # a stage's code stamp holds the code digest its jobs' provenance records
    from alfi.io import load_torch

    stamp = yaml.safe_load((results / "code_stamps" / "weinberg" / "train.yaml").read_text())
    model = load_torch(results / "models" / "weinberg" / "nll-exp" / "seed0.pt")
    assert stamp["code"] == model["provenance"]["record"]["code"]
    assert {"alfi.commands.train", "alfi.simulators.weinberg"} <= set(stamp["modules"])

    assert project.dry_run(*common) == {}, "a finished workflow has nothing to redo"

    # An edit of the plotting code: the figures alone; an edit of its comments, docstrings or
    # layout reruns nothing (each stage's code stamp digests syntax trees without docstrings).
    # The documented extra targets then run on the new figures: the README's copies (which need
    # the figures, so they are redrawn first), the benchmark and the captioned report.
    drawn = (results / "logs" / "figures.benchmark.tsv").stat().st_mtime_ns
    figures = project.root / "alfi" / "figures.py"
    text = figures.read_text()
    docstring = text.index('"""') + 3
    figures.write_text(f"# a comment\n{text[:docstring]}Reworded. {text[docstring:]}\n\n")
    assert project.dry_run(*common) == {}, "comments and docstrings are no change of code"
    with open(figures, "a") as handle:
        handle.write("\nEDITED = True\n")
    rerun = {"report_code_stamp": 1, "figures": 1, "all": 1, "total": 3}
    stamp_file = results / "code_stamps" / "figures.yaml"
    stamped = stamp_file.read_bytes(), stamp_file.stat().st_mtime_ns
    assert project.dry_run(*common) == rerun
    assert (stamp_file.read_bytes(), stamp_file.stat().st_mtime_ns) == stamped, "no parse writes"
    # A job of the old code that ends after the workflow was parsed again (as every cluster
    # job parses it) still reruns: the parse rewrote no stamp, its job does.
    for path in (results / "figures").iterdir():
        os.utime(path)
    assert project.dry_run(*common) == rerun
    project.run("bench", "readme_figures", "--cores", "2", *common)
    assert (results / "logs" / "figures.benchmark.tsv").stat().st_mtime_ns > drawn
    for part in config["bench"]["parts"]:
        assert len(pd.read_parquet(results / "benchmarks" / f"{part}.parquet")) > 0
    for name in ("poisson_trajectory", "poisson_boxplot", "weinberg_histograms"):
        copy = project.root / "docs" / "figures" / f"{name}.png"
        assert copy.read_bytes() == (results / "figures" / f"{name}.png").read_bytes()
    project.run(*common, "--report", str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "weinberg_histograms.png" in html and "summary.md" in html

    # How often checkpoints are written changes no result: only the settings files follow it,
    # rewritten when the workflow is parsed, with no job.
    n = len(config["simulators"])
    settings_file = results / "settings" / "weinberg" / "config.yaml"
    _edit_config(project.root, lambda c: c["defaults"]["train"].update(checkpoint_every=3))
    assert project.dry_run(*common) == {}
    assert yaml.safe_load(settings_file.read_text())["defaults"]["train"]["checkpoint_every"] == 3

    # The same kind of change with new models in one invocation: the new seed's jobs all run
    # (with a settings job, Snakemake 9.27 ran it alone and stopped: snakemake#4166).
    _edit_config(project.root, lambda c: c["defaults"]["train"].update(checkpoint_every=4))
    models = sum(len(variants_for(config, s)) for s in config["simulators"])
    # one more ALFI model per variant and one regressor per simulator (one training size)
    assert project.dry_run(*common, "seeds=[0,1]") == _downstream(
        train=models, evaluate=models, amortised=n
    )
    _edit_config(project.root, lambda c: c["defaults"]["train"].update(checkpoint_every=3))

    # Training settings of Weinberg only: its training onwards, not its data, not the others.
    _edit_config(
        project.root,
        lambda c: c.setdefault("overrides", {}).update(weinberg={"train": {"lr": 2e-3}}),
    )
    assert project.dry_run(*common) == _downstream(variant_settings=1, train=1, evaluate=1)

    # Evaluation settings of Poisson only: its evaluations (2 variants), no training.
    _edit_config(project.root, lambda c: c["overrides"].update(poisson={"evaluate": {"inits": 2}}))
    assert project.dry_run(*common) == _downstream(
        stage_settings=1, variant_settings=1, train=1, evaluate=1 + 2
    )
    project.run("--cores", "2", *common)

    # Training settings of one Poisson variant: that variant's model alone (that the model
    # trains under them: tests/test_bad_input.py).
    _edit_config(
        project.root,
        lambda c: c.update(variant_overrides={"mse-last": {"train": {"tail_steps": 2}}}),
    )
    assert project.dry_run(*common) == _downstream(variant_settings=1, train=1, evaluate=1)
    _edit_config(project.root, lambda c: c.pop("variant_overrides"))

    # Dataset settings: the data are redrawn and everything downstream reruns in this one
    # invocation (no second run needed), and the model records the new data.
    _edit_config(project.root, lambda c: c["overrides"]["weinberg"].update(dataset={"n_train": 40}))
    assert project.dry_run(*common) == _downstream(stage_settings=1, **CHAIN)
    project.run("--cores", "2", *common)
    from alfi.io import load_dataset

    data = load_dataset(results / "data" / "weinberg" / "train.npz")
    model = load_torch(results / "models" / "weinberg" / "nll-exp" / "seed0.pt")
    assert len(data) == 40 and model["provenance"]["record"]["data"] == data.fingerprint

    # Nothing left to redo, even with the checkout moved (a new clone, another mount point):
    # the code stamps name modules, not paths.
    moved = replace(project, root=Path(shutil.move(project.root, tmp_path / "moved")))
    try:
        assert moved.dry_run(*common) == {}, "a moved checkout reruns nothing"
    finally:
        shutil.move(moved.root, project.root)

    # Another T_test: every evaluation (all T_test come from one unroll), nothing else.
    _edit_config(project.root, lambda c: c.update(t_test=[*c["t_test"], 9]))
    assert project.dry_run(*common) == _downstream(stage_settings=n, evaluate=n + 1)
    _edit_config(project.root, lambda c: c.update(t_test=c["t_test"][:-1]))

    # The C2ST's forest: every run that reports a C2ST, not the exact posterior, no training.
    trees = config["defaults"]["evaluate"].get("c2st_trees", 100)
    _edit_config(project.root, lambda c: c["defaults"]["evaluate"].update(c2st_trees=trees + 1))
    assert project.dry_run(*common) == _downstream(
        stage_settings=4 * n,
        evaluate=n + 1,
        prior_mean=n,
        amortised=n,
        abc_smc=n,
    )
    _edit_config(project.root, lambda c: c["defaults"]["evaluate"].update(c2st_trees=trees))

    # An edit of the seed tree: every job that draws from it, which is every job of every
    # stage, in one invocation; undone, nothing. The parser and what the commands share parse
    # arguments and write files, so an edit of them reruns nothing; an edit of one stage's
    # command reruns that stage.
    seeds = project.root / "alfi" / "seeds.py"
    original = seeds.read_text()
    seeds.write_text(original + "\nEDITED = True\n")
    assert project.dry_run(*common) == _downstream(
        code_stamp=8 * n,  # every stage of every simulator (NPE's is not run here)
        dataset=2 * n,
        mle=n,
        train=n + 1,
        evaluate=n + 1,
        posterior=n,
        prior_mean=n,
        amortised=n,
        abc_smc=n,
    )
    seeds.write_text(original)
    assert project.dry_run(*common) == {}
    for module in ("cli.py", "jobs.py", "commands/__init__.py"):
        with open(project.root / "alfi" / module, "a") as handle:
            handle.write("\nEDITED = True\n")
    assert project.dry_run(*common) == {}
    command = project.root / "alfi" / "commands" / "evaluate.py"
    original = command.read_text()
    command.write_text(original + "\nEDITED = True\n")
    assert project.dry_run(*common) == _downstream(code_stamp=n, evaluate=n + 1)
    command.write_text(original)

    # An edit of the plugin simulator's code: that simulator's chain, not the built-ins'.
    with open(project.root / "my_simulators.py", "a") as handle:
        handle.write("\nNOISE = 1.0\n")
    # (its 8 stages' stamps, and the figures', which draw its histograms)
    assert project.dry_run(*common) == _downstream(code_stamp=8, report_code_stamp=1, **CHAIN)

    # The root seed: every random draw, so every job but the full settings files' content.
    _edit_config(project.root, lambda c: c.update(seed=1))
    counts = project.dry_run(*common)
    assert counts["dataset"] == 2 * n and counts["train"] == n + 1 and counts["mle"] == n
