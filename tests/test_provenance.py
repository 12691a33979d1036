"""Every function a workflow job runs lies in its stage's code inputs.

The workflow reruns a job when the code of its stage changes (its code stamp: the digests of
the modules in :data:`alfi.provenance.STAGE_MODULES` and the simulator's own). A package
function the job runs from a module outside that list is a change that would rerun nothing,
leaving results that no longer belong to the code that claims them. Each stage's command runs
here on tiny sizes under a profiler that records every package function called (module and
class bodies aside), with the options of ``config.yaml`` that pick code paths (the pooling,
the asinh squash, fresh problems, the cosine schedule, the tail, NPE's mixture network, the
C2ST), then the reports (figures, tables) on the runs' tables, the timing table and the
benchmarks' quick parts.
"""

from __future__ import annotations

import copy
import inspect
import sys
from pathlib import Path

import pytest
import yaml

import alfi
from alfi.cli import build_parser
from alfi.provenance import STAGE_MODULES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(alfi.__file__).resolve().parent

#: Modules whose code decides no number of a result: the command line (argument parsing; the
#: commands pass the stamped settings on to the package and write files), file formats, the
#: resolution of settings (their values are each stage's settings stamp), plugin imports, the
#: memory allocator's tuning, the digests themselves, the package's lazy exports. A simulator's
#: source is a code input of its own chain (``source_files``).
NO_RESULT = {
    *("alfi", "alfi.cli", "alfi.commands", "alfi.jobs", "alfi.config", "alfi.stages"),
    *("alfi.plugins", "alfi.io", "alfi.provenance", "alfi.allocator", "alfi.__main__"),
}


def _module(path: Path) -> str | None:
    if not path.is_relative_to(PACKAGE):
        return None
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(("alfi", *parts)).removesuffix(".__init__")


def _executed(argv: list[str]) -> dict[str, set[str]]:
    """Package module to the functions that the command ``argv`` ran (after parsing it)."""
    args = build_parser().parse_args(argv)
    ran: dict[str, set[str]] = {}
    files: dict[str, str | None] = {}

    def profile(frame, event, arg):
        code = frame.f_code
        # module and class bodies run at import, whatever the command
        if event != "call" or not code.co_flags & inspect.CO_NEWLOCALS:
            return
        if code.co_filename not in files:
            files[code.co_filename] = _module(Path(code.co_filename).resolve())
        module = files[code.co_filename]
        if module is not None:
            ran.setdefault(module, set()).add(code.co_name)

    sys.setprofile(profile)
    try:
        args.run(args)
    finally:
        sys.setprofile(None)
    return ran


def _outside(stage: str, ran: dict[str, set[str]]) -> dict[str, list[str]]:
    listed = set(STAGE_MODULES[stage]) | NO_RESULT
    return {
        module: sorted(functions)
        for module, functions in ran.items()
        if module not in listed and not module.startswith("alfi.simulators")
    }


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    """configs/tiny.yaml with config.yaml's code-path options and a C2ST."""
    config = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    laptop = yaml.safe_load((ROOT / "config.yaml").read_text())["defaults"]
    defaults = config["defaults"]
    defaults["model"].update({k: laptop["model"][k] for k in ("pooling", "squash")})
    defaults["train"].update(
        {k: laptop["train"][k] for k in ("lr_schedule", "warmup", "tail_steps", "tail_weight")},
        fresh_problems=True,
        tail_steps=2,
    )
    defaults["evaluate"].update(c2st_problems=2, c2st_trees=5)
    npe = copy.deepcopy(laptop["baselines"]["npe"])
    npe.update(max_epochs=2, stop_after_epochs=1)
    defaults["baselines"]["npe"] = npe
    path = tmp_path_factory.mktemp("provenance") / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _tables(prefix: Path) -> list[str]:
    return [f"--{t}={prefix}_{t}.parquet" for t in ("estimates", "metrics", "samples")]


def test_every_function_a_job_runs_is_among_its_stage_code_inputs(
    config_file, tmp_path, require_sbi
):
    cfg = ["--config", str(config_file), "--simulator", "poisson"]
    train, test = tmp_path / "train.npz", tmp_path / "test.npz"
    reference = tmp_path / "posterior.npz"
    model = tmp_path / "model.pt"
    commands = {
        "dataset": ["-q", "dataset", *cfg, "--split", "train", "--out", str(train)],
        "train": ["-q", "train", *cfg, "--dataset", str(train), "--out", str(model)],
        "mle": ["-q", "mle", *cfg, "--dataset", str(test), *_tables(tmp_path / "mle")],
        "posterior": [
            *("-q", "baseline", "--method", "posterior", *cfg, "--dataset", str(test)),
            *("--draws-out", str(reference), *_tables(tmp_path / "posterior")),
        ],
        "evaluate": [
            *("-q", "evaluate", "--config", str(config_file), "--model", str(model)),
            *("--t-test", "4", "6", "--dataset", str(test), "--reference", str(reference)),
            *(
                arg
                for table in ("estimates", "metrics", "samples")
                for arg in (f"--{table}", *(f"{tmp_path}/e{t}_{table}.parquet" for t in (4, 6)))
            ),
        ],
    }
    for method in ("prior_mean", "regressor", "npe", "abc_smc"):
        extra = ["--train-dataset", str(train)] if method in ("regressor", "npe") else []
        extra += ["--budget", "1000"] if method == "abc_smc" else []
        commands[method] = [
            *("-q", "baseline", "--method", method, *cfg, "--dataset", str(test)),
            *("--reference", str(reference), *extra, *_tables(tmp_path / method)),
        ]
    # the test meta-dataset first, outside any stage's check
    build = build_parser().parse_args(
        ["-q", "dataset", *cfg, "--split", "test", "--out", str(test)]
    )
    build.run(build)

    outside = {}

    def check(stage: str, argv: list[str]) -> None:
        found = _outside(stage, _executed(argv))
        if found:
            outside[stage] = found

    for stage, argv in commands.items():
        check(stage, argv)
    # the reports, from the runs' tables aggregated (as the workflow's aggregate jobs do)
    runs = ["mle", "e4", "e6", "posterior", "prior_mean", "regressor", "npe", "abc_smc"]
    for table in ("estimates", "metrics", "samples"):
        parts = [str(tmp_path / f"{run}_{table}.parquet") for run in runs]
        aggregate = build_parser().parse_args(
            ["aggregate", *parts, "--out", str(tmp_path / f"{table}.parquet")]
        )
        aggregate.run(aggregate)
    tables = [f"--{t}={tmp_path / t}.parquet" for t in ("estimates", "metrics")]
    horizon = ["--t-train", "poisson=4"]
    check(
        "figures",
        [
            *("figures", *tables, f"--samples={tmp_path / 'samples'}.parquet"),
            *("--out-dir", str(tmp_path / "figures"), *horizon),
        ],
    )
    check("tables", ["tables", *tables, "--out-dir", str(tmp_path / "tables"), *horizon])
    timed = tmp_path / "logs" / "train" / "poisson_nll-exp_seed0.benchmark.tsv"
    timed.parent.mkdir(parents=True)
    timed.write_text("s\tcpu_time\tmax_rss\n1.5\t1.0\t100.0\n")
    timing = ["timing", str(timed), "--simulators", "poisson"]
    timing += ["--out", str(tmp_path / "timing.parquet"), "--markdown", str(tmp_path / "t.md")]
    check("timing", timing)
    # the benchmarks' quick parts (evaluate and accuracy take half a minute more)
    parts = ["--only", "throughput,step,ensemble", "--quick", "--threads", "1"]
    check("bench", ["bench", "--device", "cpu", *parts, "--out-dir", str(tmp_path / "bench")])

    assert not outside, (
        "functions run outside their stage's code inputs (alfi.provenance.STAGE_MODULES): "
        f"{outside}"
    )


def test_code_digest_ignores_comments_docstrings_and_layout_but_not_code(tmp_path):
    from alfi.provenance import code_digest, file_digest

    original = '''"""A module."""


def scale(x, factor=2.0):
    """Scale x."""
    return x * factor  # the factor


class Model:
    """A class."""

    rate = 0.1
'''
    same_code = '''"""A module, its docstring rewritten."""

# a comment
def scale(x,
          factor=2.0):
    return x * factor


class Model:
    """Another docstring."""
    rate = 0.1
'''
    digests = {}
    for i, (name, text) in enumerate(
        {
            "original": original,
            "same code": same_code,
            "another default": original.replace("factor=2.0", "factor=3.0"),
            "a string that is no docstring": original.replace("rate = 0.1", 'rate = "0.1"'),
            "a docstring turned code": original.replace('"""Scale x."""', "x = x + 0"),
        }.items()
    ):
        path = tmp_path / f"module{i}.py"  # one file each: the digests are cached by mtime
        path.write_text(text)
        digests[name] = file_digest(path)
    assert digests["same code"] == digests["original"]
    assert len(set(digests.values())) == 4, digests
    assert code_digest([path]) != code_digest([path, tmp_path / "module0.py"])


def test_code_stamp_names_modules_and_holds_the_records_code_digest():
    import ast

    from alfi.provenance import _normal_form, code_digest, code_stamp, source_files, stage_sources
    from alfi.simulators import get_simulator

    poisson = get_simulator("poisson")
    sources = stage_sources(poisson, "evaluate")
    stamp = code_stamp(sources)
    assert stamp["code"] == code_digest(source_files(poisson, "evaluate"))
    assert {"alfi.evaluate_alfi", "alfi.commands.evaluate", "alfi.simulators.poisson"} <= set(
        stamp["modules"]
    )
    assert "alfi.commands.train" not in stamp["modules"]
    # empty fields (a function's absent decorators and return annotation) are left out, so a
    # Python that adds one (3.12's type_params) writes the same normal form
    normal = _normal_form(ast.parse("def f(x):\n    return x\n"))
    assert "decorator_list" not in normal and "returns" not in normal and "name='f'" in normal
