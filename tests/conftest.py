"""Shared fixtures and options.

``--device cuda`` runs the device-aware tests (those taking the ``device`` fixture) on the GPU
instead of the CPU, and only those: the others would run on the CPU as they do without it
(``python -m pytest --device cuda``). ``-m "not slow"`` leaves out the workflow and SLURM runs:
the quick loop while editing the package.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="where the device-aware tests run (default cpu)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--device") == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--device cuda was given but torch sees no CUDA device")


#: The test files of minutes, longest first. Collected first, so that with ``--dist loadfile``
#: and pytest-xdist's reordering by test count off (``make test``) the SLURM and rerun files start
#: at once, one per worker. xdist tops up a worker with two tests or fewer pending, so the workflow
#: file follows the one-test rerun file and the short files run behind the three SLURM tests
#: (2026-12-02, SLURM up: 333 + 116 s on one worker, 316 + 117 s on the other). Reordered by
#: count, the rerun and SLURM files came last and ran one after the other.
LONGEST_FIRST = ("test_slurm.py", "test_reruns.py", "test_workflow.py")


def _file_rank(item: pytest.Item) -> int:
    name = item.path.name
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_file_rank)  # stable: the order within and among the other files is kept
    if config.getoption("--device") != "cuda":
        return
    keep, elsewhere = [], []
    for item in items:
        (keep if "device" in getattr(item, "fixturenames", ()) else elsewhere).append(item)
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = keep


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # One thread per pytest-xdist worker: two workers of two OpenMP threads each on two cores
    # spin against each other (a 20 s test took 150 s).
    torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)
    yield


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    """The device of the device-aware tests (``--device``)."""
    return torch.device(request.config.getoption("--device"))


@pytest.fixture
def generator() -> Callable[[int], torch.Generator]:
    """A factory of seeded CPU generators: ``generator(seed)``."""
    return lambda seed=0: torch.Generator().manual_seed(seed)


ROOT = Path(__file__).resolve().parents[1]
PROJECT_ITEMS = ("Snakefile", "config.yaml", "configs", "workflow", "envs", "profiles")


@dataclass(frozen=True)
class Workflow:
    """Snakemake (the one beside this interpreter) run in ``root``: the repository itself, or a
    scratch copy of the workflow and the package where edits are harmless."""

    root: Path

    @property
    def executable(self) -> str:
        return str(Path(sys.executable).parent / "snakemake")

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # PATH as the caller has it (the environment not activated, as `make run`): the
        # workflow itself must find the `alfi` command beside its interpreter.
        result = subprocess.run(
            [self.executable, *args], cwd=self.root, capture_output=True, text=True
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def dry_run(self, *args: str) -> dict[str, int]:
        """The job counts a dry run prints (rule to count, and ``total``); {} if nothing to do."""
        result = self.run("--dry-run", "--quiet", "rules", *args)
        output = result.stdout + result.stderr
        if "Nothing to be done" in output:
            return {}
        header = re.search(r"^job\s+count\s*$", output, flags=re.MULTILINE)
        assert header is not None, f"no job table in:\n{output}"
        counts = {}
        for line in output[header.end() :].splitlines()[2:]:
            match = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
            if not match:
                break
            counts[match[1]] = int(match[2])
        return counts


@pytest.fixture
def require_sbi() -> None:
    """Skip, naming the extra, unless ALFI_REQUIRE_BASELINES=1 (CI with the extra): then fail."""
    try:
        import sbi  # noqa: F401
    except ImportError:
        if os.environ.get("ALFI_REQUIRE_BASELINES") == "1":
            raise
        pytest.skip("needs the baselines extra (sbi): pip install -e '.[baselines]'")


@pytest.fixture(scope="session")
def repository() -> Workflow:
    """The workflow as the repository holds it (for dry runs and lint)."""
    return Workflow(ROOT)


@pytest.fixture
def project(tmp_path: Path) -> Workflow:
    """A scratch copy of the workflow and the package under ``tmp_path / "project"``."""
    dest = tmp_path / "project"
    dest.mkdir()
    for item in PROJECT_ITEMS:
        source = ROOT / item
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        copy(source, dest / item)
    shutil.copytree(ROOT / "alfi", dest / "alfi", ignore=shutil.ignore_patterns("__pycache__"))
    return Workflow(dest)


@pytest.fixture(scope="session")
def check_results() -> Callable[[Path, list[str], list[int]], None]:
    """Checks of a finished run's results folder: tables, figures and report files."""
    from alfi.columns import ESTIMATE_COLUMNS, METRIC_COLUMNS, SAMPLE_COLUMNS

    def check(
        results: Path, simulators: list[str], t_test: list[int], methods: list[str] | None = None
    ) -> None:
        for table, columns in (
            ("estimates", ESTIMATE_COLUMNS),
            ("metrics", METRIC_COLUMNS),
            ("samples", SAMPLE_COLUMNS),
        ):
            frame = pd.read_parquet(results / f"{table}.parquet")
            assert list(frame.columns) == columns
            assert set(frame.simulator) == set(simulators)
        estimates = pd.read_parquet(results / "estimates.parquet")
        alfi = estimates[estimates.method == "alfi"]
        assert set(alfi.t_test) == set(t_test) and estimates["estimate"].notna().all()
        finals = alfi[alfi.t == alfi.t_test]
        assert len(finals) > 0
        # Every configured method ran on every simulator; those with draws report where the
        # truth falls in them, and their C2ST against the exact posterior.
        if methods is None:
            methods = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())["methods"]
        assert set(estimates.method) == set(methods)
        assert (estimates.groupby("simulator")["method"].nunique() == len(methods)).all()
        with_draws = {"alfi", "posterior", "prior_mean", "npe", "abc_smc"} & set(methods)
        drawn = estimates[estimates.method.isin(with_draws)]
        assert drawn.loc[drawn.t == drawn.t_test, "truth_quantile"].between(0, 1).all()
        metrics = pd.read_parquet(results / "metrics.parquet")
        c2st = metrics[metrics.metric == "c2st"]
        config = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
        if "posterior" in methods and config["defaults"]["evaluate"]["c2st_problems"] > 0:
            assert set(c2st.method) == with_draws - {"posterior"}
        assert c2st["value"].between(0, 1).all()
        for name in ("summary", "ablation", "ablation_contrasts", "methods"):
            for ext in ("md", "tex"):
                assert (results / "tables" / f"{name}.{ext}").stat().st_size > 0
        pngs = list((results / "figures").glob("*.png"))
        assert len(pngs) >= 2 * len(simulators) + 2 and all(p.stat().st_size > 1000 for p in pngs)
        # where the time went: a row per job that made the tables, every method's among them
        jobs = pd.read_parquet(results / "timing.parquet")
        assert set(jobs.method) == set(methods) | {"data", "aggregate"}
        assert set(jobs.simulator) == set(simulators) | {""} and jobs.seconds.ge(0).all()
        assert "| all " in (results / "tables" / "timing.md").read_text()

    return check


@pytest.fixture(scope="session")
def readme_plugin() -> str:
    """The README's plugin example (a user's simulator), exactly as the README shows it."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- plugin-example -->\s*```python\n(.*?)```", text, flags=re.DOTALL)
    assert match, "README.md lost its plugin example"
    return match[1]
