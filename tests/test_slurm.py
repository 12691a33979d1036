"""The tiny workflow through a real SLURM cluster (workflow/scripts/slurm_cluster.sh start).

Skipped, with the reason shown, where no cluster answers; with ALFI_REQUIRE_SLURM=1 (as in CI)
a missing cluster is a failure instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml
from test_workflow import _copy_project, check_results, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]


def _cluster_problem() -> str | None:
    if shutil.which("sinfo") is None:
        return "sinfo not found: no SLURM client installed"
    result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if result.returncode != 0:
        return f"no SLURM controller answers: {result.stderr.strip()}"
    if not re.search(r"idle|mix|alloc", result.stdout):
        return f"no usable SLURM node: states {result.stdout.split()}"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = _cluster_problem()
    if problem is not None:
        if os.environ.get("ALFI_REQUIRE_SLURM") == "1":
            pytest.fail(f"ALFI_REQUIRE_SLURM=1 but {problem}")
        pytest.skip(f"{problem}; start one with workflow/scripts/slurm_cluster.sh start")


def test_tiny_workflow_through_slurm(cluster, tmp_path):
    project = _copy_project(tmp_path / "project")
    config = yaml.safe_load((project / "configs" / "tiny.yaml").read_text())
    config["resources"]["gpu"] = 1  # train and evaluate jobs ask SLURM for a GPU
    config["simulators"] = ["weinberg"]
    (project / "configs" / "tiny.yaml").write_text(yaml.safe_dump(config))
    results = tmp_path / "results"
    snakemake(
        "--executor",
        "slurm",
        "--profile",
        "profiles/slurm",
        "--jobs",
        "4",
        "--configfile",
        "configs/tiny.yaml",
        "--config",
        f"results={results}",
        cwd=project,
    )
    check_results(results, config["simulators"], config["t_test"])
    (log,) = (results / "logs" / "train").glob("*.log")
    text = log.read_text()
    assert re.search(r"SLURM_JOB_ID=\d+", text), "the train job did not run under SLURM"
    assert "CUDA_VISIBLE_DEVICES=0" in text, "the train job was not given the requested GPU"
