"""alfi.timing: a run's benchmark files read into a row per job and summed per method."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from alfi.cli import main
from alfi.io import InputError
from alfi.timing import read_benchmarks, time_table

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
SIMULATORS = ["gaussian", "gaussian_mean", "poisson"]


def _benchmark(logs: Path, kind: str, job: str, *seconds: float) -> Path:
    path = logs / kind / f"{job}.benchmark.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    row = "{s}\t0:00:00\t100.0\t1.0\t1.0\t1.0\t0.0\t0.0\t50.0\t{cpu}\n"
    rows = "".join(row.format(s=s, cpu=s / 2) for s in seconds)
    path.write_text(HEADER + rows)
    return path


@pytest.fixture
def run(tmp_path) -> list[Path]:
    logs = tmp_path / "logs"
    return [
        _benchmark(logs, "dataset", "poisson_train", 1.0),
        _benchmark(logs, "train", "poisson_nll-exp_seed0", 40.0),
        _benchmark(logs, "train", "gaussian_mean_group0", 30.0),
        _benchmark(logs, "evaluate", "gaussian_nll-exp_seed0", 10.0),
        _benchmark(logs, "npe", "gaussian_mean_n100_seed0", 6.0, 8.0),  # two repeats
        _benchmark(logs, "aggregate", "metrics", 2.0),
    ]


def test_each_job_is_named_by_its_kind_method_and_simulator(run):
    jobs = read_benchmarks(run, SIMULATORS)
    assert list(jobs.kind) == ["dataset", "train", "train", "evaluate", "npe", "aggregate"]
    assert list(jobs.method) == ["data", "alfi", "alfi", "alfi", "npe", "aggregate"]
    # SIMULATOR then the kind's suffix in a job's name: gaussian_mean's jobs are not gaussian's
    assert list(jobs.simulator) == [
        *("poisson", "poisson", "gaussian_mean", "gaussian", "gaussian_mean", "")
    ]
    assert jobs.seconds.tolist() == [1.0, 40.0, 30.0, 10.0, 7.0, 2.0]  # repeats averaged
    assert jobs.cpu_seconds.tolist() == [0.5, 20.0, 15.0, 5.0, 3.5, 1.0]


def test_the_table_sums_every_job_once(run):
    jobs = read_benchmarks(run, SIMULATORS)
    table = time_table(jobs, SIMULATORS).set_index(["method", "kind"])
    assert table.index[0] == ("alfi", "train")  # largest first
    assert table.loc[("alfi", "train"), "job-seconds"] == 70.0
    assert table.loc[("alfi", "train"), "jobs"] == 2
    assert table.loc[("alfi", "train"), "longest job"] == "poisson_nll-exp_seed0 (40 s)"
    assert table.loc[("alfi", "train"), ["gaussian", "gaussian_mean", "poisson"]].tolist() == [
        *(0.0, 30.0, 40.0)
    ]
    every = table.loc[("all", "")]
    body = table.drop(index=("all", ""))
    assert every["job-seconds"] == jobs.seconds.sum() == body["job-seconds"].sum()
    assert every["jobs"] == len(jobs) and body.share.sum() == pytest.approx(1.0)
    assert every[SIMULATORS].sum() == jobs.seconds.sum() - 2.0  # the aggregation: no simulator


def test_the_command_writes_the_jobs_and_the_summary(run, tmp_path):
    out, markdown = tmp_path / "timing.parquet", tmp_path / "timing.md"
    argv = [*map(str, run), "--simulators", ",".join(SIMULATORS)]
    assert main(["timing", *argv, "--out", str(out), "--markdown", str(markdown)]) == 0
    assert len(pd.read_parquet(out)) == len(run)
    text = markdown.read_text()
    assert "| alfi " in text and "| all " in text and "poisson_nll-exp_seed0 (40 s)" in text


def test_what_snakemake_did_not_measure_is_missing_not_zero(tmp_path):
    path = tmp_path / "logs" / "mle" / "poisson.benchmark.tsv"
    path.parent.mkdir(parents=True)
    path.write_text(HEADER + "0.05\t0:00:00\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n")
    jobs = read_benchmarks([path], SIMULATORS)
    assert jobs.seconds.tolist() == [0.05] and jobs.cpu_seconds.isna().all()


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("train.log", HEADER, "expected a Snakemake benchmark file"),
        ("x.benchmark.tsv", "seconds\n1.0\n", "expected Snakemake's benchmark columns"),
        ("x.benchmark.tsv", HEADER, "and a row, got"),
        ("x.benchmark.tsv", "", "not a readable benchmark table"),
        ("x.benchmark.tsv", HEADER + "abc" + "\t0" * 9 + "\n", r"column s: expected seconds"),
        ("poisson.benchmark.tsv", b"\xff\xfe\x00s\n", "not a readable benchmark table"),
    ],
)
def test_bad_benchmark_files_are_named(tmp_path, capsys, name, text, message):
    path = tmp_path / "mle" / name
    path.parent.mkdir()
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_benchmarks([path], SIMULATORS)
    out, markdown = tmp_path / "timing.parquet", tmp_path / "t.md"
    argv = ["timing", str(path), "--simulators", "poisson", "--out", str(out)]
    assert main([*argv, "--markdown", str(markdown)]) == 2
    assert str(path) in capsys.readouterr().err and not out.exists() and not markdown.exists()


@pytest.mark.parametrize(
    ("kind", "job"),
    [
        ("train", "normal_nll-exp_seed0"),  # no such simulator
        ("npe", "poisson_seed0"),  # an amortised run is SIMULATOR_nSIZE_seedSEED
        ("abc_smc", "poisson"),
    ],
)
def test_a_job_of_no_known_simulator_is_named(tmp_path, kind, job):
    path = _benchmark(tmp_path / "logs", kind, job, 1.0)
    with pytest.raises(InputError, match=rf"a {kind} job's name is SIMULATOR.*got '{job}'"):
        read_benchmarks([path], SIMULATORS)


def test_removed_benchmark_files_are_left_out_and_counted(run, tmp_path):
    """The workflow's timing job reads the files without declaring them (--skip-missing):
    after results/logs is removed, the table says how many jobs left no time."""
    run[1].unlink()
    out, markdown = tmp_path / "timing.parquet", tmp_path / "timing.md"
    argv = ["timing", *map(str, run), "--simulators", ",".join(SIMULATORS), "--out", str(out)]
    assert main([*argv, "--markdown", str(markdown)]) == 2  # without it: a missing input
    assert main([*argv, "--markdown", str(markdown), "--skip-missing"]) == 0
    assert len(pd.read_parquet(out)) == len(run) - 1
    assert "1 of the jobs left no benchmark file" in markdown.read_text()
    for path in run:
        path.unlink(missing_ok=True)
    assert main([*argv, "--markdown", str(markdown), "--skip-missing"]) == 0
    assert pd.read_parquet(out).empty and "| all " in markdown.read_text()
