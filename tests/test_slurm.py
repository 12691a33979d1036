"""The tiny workflow through a real SLURM cluster (scripts/slurm_cluster.sh start):
the whole DAG with a GPU request, a training job requeued mid-run, and a failed job's log.

Skipped, with the reason shown, where no cluster answers; with ALFI_REQUIRE_SLURM=1 (as in CI)
a missing cluster is a failure instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

pytestmark = [pytest.mark.slurm, pytest.mark.workflow, pytest.mark.slow]

# The test jobs take seconds: poll every 2 s, not the profile's 10 s that suits real jobs.
FAST_POLLING = [
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",
    "2",
]


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
        pytest.skip(f"{problem}; start one with scripts/slurm_cluster.sh start")


def test_tiny_workflow_through_slurm(cluster, project, check_results, tmp_path):
    config = yaml.safe_load((project.root / "configs" / "tiny.yaml").read_text())
    config["resources"]["gpu"] = 1  # train and evaluate jobs ask SLURM for a GPU
    config["simulators"] = ["weinberg"]
    config["methods"] = ["alfi", "mle", "npe"]  # a baseline job too, with fewer jobs to poll
    (project.root / "configs" / "tiny.yaml").write_text(yaml.safe_dump(config))
    results = tmp_path / "results"
    project.run(
        "--executor",
        "slurm",
        "--profile",
        "profiles/slurm",
        *FAST_POLLING,
        "--jobs",
        "4",
        "--configfile",
        "configs/tiny.yaml",
        "--config",
        f"results={results}",
    )
    check_results(results, config["simulators"], config["t_test"], config["methods"])
    (log,) = (results / "logs" / "train").glob("*.log")
    text = log.read_text()
    assert re.search(r"SLURM_JOB_ID=\d+", text), "the train job did not run under SLURM"
    assert "CUDA_VISIBLE_DEVICES=0" in text, "the train job was not given the requested GPU"


def _weinberg_with_data(project, results: Path, **train) -> list[str]:
    """The tiny config, Weinberg only, with these training settings, as configs/test.yaml, and
    its training set made locally (a SLURM job would add half a minute of status polling).
    Returns the arguments that select this config."""
    config = yaml.safe_load((project.root / "configs" / "tiny.yaml").read_text())
    config["simulators"] = ["weinberg"]
    overrides = config.setdefault("overrides", {}).setdefault("weinberg", {})
    overrides.setdefault("train", {}).update(train)
    (project.root / "configs" / "test.yaml").write_text(yaml.safe_dump(config))
    args = ["--configfile", "configs/test.yaml", "--config", f"results={results}"]
    project.run(str(results / "data" / "weinberg" / "train.npz"), "--cores", "1", *args)
    return args


def _slurm_jobs(prefix: str) -> list[dict[str, str]]:
    """The jobs of a run with this job-name prefix (names <prefix>_<run uuid>): id, name,
    comment (rule_<rule>_wildcards_<wildcards>) and state."""
    out = subprocess.run(
        ["squeue", "-h", "--states=all", "-o", "%i|%j|%k|%T"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    fields = ("id", "name", "comment", "state")
    jobs = [dict(zip(fields, line.split("|", 3), strict=True)) for line in out.splitlines()]
    return [job for job in jobs if job["name"].startswith(f"{prefix}_")]


def _start_snakemake(project, log: Path, *args: str) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            [project.executable, *args], cwd=project.root, stdout=out, stderr=subprocess.STDOUT
        )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_requeued_training_resumes_and_matches_an_uninterrupted_run(cluster, project, tmp_path):
    results = tmp_path / "results"
    # 1000 steps of ~10 ms, a checkpoint after each: long enough to requeue the job mid-run.
    config = _weinberg_with_data(project, results, epochs=500, checkpoint_every=1)
    model = results / "models" / "weinberg" / "nll-exp" / "seed0.pt"
    checkpoint = results / "checkpoints" / "weinberg" / "nll-exp" / "seed0.ckpt"
    prefix = f"alfirequeue{os.getpid()}"
    log = tmp_path / "snakemake.log"
    run = _start_snakemake(
        project,
        log,
        str(model),
        "--executor",
        "slurm",
        "--profile",
        "profiles/slurm",
        *FAST_POLLING,
        "--jobs",
        "2",
        "--slurm-jobname-prefix",
        prefix,
        "--slurm-keep-successful-logs",
        *config,
    )
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists():
            assert run.poll() is None, f"snakemake ended before a checkpoint:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no checkpoint after 120 s:\n{log.read_text()}"
            time.sleep(0.2)
        (job,) = [j for j in _slurm_jobs(prefix) if j["comment"].startswith("rule_train_")]
        requeue = subprocess.run(["scontrol", "requeue", job["id"]], capture_output=True, text=True)
        assert requeue.returncode == 0, f"scontrol requeue {job}: {requeue.stderr}"

        # Meanwhile the same training, uninterrupted, outside SLURM.
        reference = tmp_path / "reference"
        alfi = subprocess.run(
            [
                str(Path(sys.executable).parent / "alfi"),
                "train",
                "--config",
                str(results / "settings" / "weinberg" / "config.yaml"),
                "--simulator",
                "weinberg",
                "--variant",
                "nll-exp",
                "--seed",
                "0",
                "--threads",
                "1",
                "--dataset",
                str(results / "data" / "weinberg" / "train.npz"),
                "--checkpoint",
                str(reference / "seed0.ckpt"),
                "--out",
                str(reference / "seed0.pt"),
            ],
            capture_output=True,
            text=True,
        )
        assert alfi.returncode == 0, alfi.stderr
        assert run.wait(timeout=180) == 0, f"the workflow failed:\n{log.read_text()}"
    finally:
        if run.poll() is None:
            run.terminate()  # snakemake cancels its SLURM jobs
            run.wait(timeout=60)

    show = subprocess.run(
        ["scontrol", "show", "job", job["id"]], capture_output=True, text=True
    ).stdout
    assert "Restarts=1" in show and "JobState=COMPLETED" in show, show
    # The SLURM log (appended to, not truncated, on requeue) holds both runs.
    (slurm_log,) = (project.root / ".snakemake" / "slurm_logs" / "rule_train").rglob(
        f"{job['id']}.log"
    )
    assert "DUE TO JOB REQUEUE" in slurm_log.read_text()
    text = (results / "logs" / "train" / "weinberg_nll-exp_seed0.log").read_text()
    assert f"SLURM_JOB_ID={job['id']}" in text
    resumed = re.search(rf"resumed from {re.escape(str(checkpoint))} at step (\d+)", text)
    assert resumed, f"the requeued job did not resume from its checkpoint:\n{text}"
    assert 0 < int(resumed[1]) < 1000, (
        "the job was requeued before its first or after its last step"
    )

    weights, expected = _weights(model), _weights(reference / "seed0.pt")
    assert weights.keys() == expected.keys()
    different = [name for name in weights if not torch.equal(weights[name], expected[name])]
    assert not different, f"weights differ from the uninterrupted run's: {different}"


def test_failed_job_keeps_its_slurm_log(cluster, project, tmp_path):
    results = tmp_path / "results"
    config = _weinberg_with_data(project, results, lr=1.0e30)  # a NaN meta-loss at step 1
    logs = project.root / ".snakemake" / "slurm_logs"
    # A failed job's log from weeks ago: the plugin's default deletes logs older than 10 days.
    old = logs / "rule_train" / "weinberg_nll-exp_0" / "1.log"
    old.parent.mkdir(parents=True)
    old.write_text("an old failure\n")
    month_ago = time.time() - 30 * 86400
    os.utime(old, (month_ago, month_ago))
    result = project.run(
        str(results / "models" / "weinberg" / "nll-exp" / "seed0.pt"),
        "--executor",
        "slurm",
        "--profile",
        "profiles/slurm",
        *FAST_POLLING,
        "--jobs",
        "1",
        *config,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    train_log = results / "logs" / "train" / "weinberg_nll-exp_seed0.log"
    assert "meta-loss is not finite at step 1" in train_log.read_text()

    (failed,) = [log for log in logs.rglob("*.log") if log != old]
    assert failed.parent == old.parent, f"not the train job's SLURM log: {failed}"
    text = failed.read_text()
    assert "Error in rule train" in text and str(train_log) in text, text
    assert str(failed) in output, "snakemake did not point at the failed job's SLURM log"
    assert old.exists(), "a failed job's SLURM log was deleted for its age"
