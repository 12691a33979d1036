"""The ``alfi`` command line: a whole chain on a tiny config, and clear errors on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from alfi.cli import main
from alfi.columns import ESTIMATE_COLUMNS, METRIC_COLUMNS, SAMPLE_COLUMNS
from alfi.evaluate_alfi import training_cost
from alfi.provenance import STAGE_MODULES

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"


def _tables(prefix: Path) -> list[str]:
    return [f"--{t}={prefix}_{t}.parquet" for t in ("estimates", "metrics", "samples")]


def test_chain_dataset_train_evaluate_mle_aggregate(tmp_path):
    cfg = ["--config", str(TINY), "--simulator", "weinberg"]
    for split in ("train", "test"):
        assert (
            main(["-q", "dataset", *cfg, "--split", split, "--out", f"{tmp_path}/{split}.npz"]) == 0
        )
    assert (
        main(
            [
                "-q",
                "train",
                *cfg,
                "--dataset",
                f"{tmp_path}/train.npz",
                "--checkpoint",
                f"{tmp_path}/ckpt",
                "--out",
                f"{tmp_path}/m.pt",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "-q",
                "evaluate",
                "--config",
                str(TINY),
                "--model",
                f"{tmp_path}/m.pt",
                "--t-test",
                "6",
                "--dataset",
                f"{tmp_path}/test.npz",
                *_tables(tmp_path / "a"),
            ]
        )
        == 0
    )
    assert (
        main(["-q", "mle", *cfg, "--dataset", f"{tmp_path}/test.npz", *_tables(tmp_path / "m")])
        == 0
    )
    for table, columns in (
        ("estimates", ESTIMATE_COLUMNS),
        ("metrics", METRIC_COLUMNS),
        ("samples", SAMPLE_COLUMNS),
    ):
        out = tmp_path / f"{table}.parquet"
        assert (
            main(
                [
                    "aggregate",
                    str(tmp_path / f"a_{table}.parquet"),
                    str(tmp_path / f"m_{table}.parquet"),
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        frame = pd.read_parquet(out)
        assert list(frame.columns) == columns
        assert set(frame["method"]) == {"alfi", "mle"}
    estimates = pd.read_parquet(tmp_path / "estimates.parquet")
    alfi = estimates[estimates.method == "alfi"]
    # 8 test problems x 7 iterations (t = 0..6) x (2 parameters + asymmetry)
    assert len(alfi) == 8 * 7 * 3 and alfi["t"].max() == 6
    assert set(alfi.parameter) == {"beam_energy", "fermi_constant", "asymmetry"}
    assert (
        alfi["estimate"].notna().all()
        and (alfi.loc[alfi.parameter != "asymmetry", "sigma"] > 0).all()
    )
    mle = estimates[estimates.method == "mle"]
    assert len(mle) == 8 * 3 and (mle["t_test"] == 0).all()


def test_same_config_same_numbers(tmp_path):
    cfg = ["--config", str(TINY), "--simulator", "poisson", "--split", "test"]
    main(["-q", "dataset", *cfg, "--out", f"{tmp_path}/a.npz"])
    main(["-q", "dataset", *cfg, "--out", f"{tmp_path}/b.npz"])
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def _bad_config(tmp_path: Path, edit) -> Path:
    config = yaml.safe_load(TINY.read_text())
    edit(config)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["defaults"]["train"].update(lr=-1), "'defaults.train.lr': -1 is less than"),
        (lambda c: c["defaults"]["train"].update(learning_rate=1), "learning_rate"),
        (lambda c: c.update(device="tpu"), "'device': 'tpu' is not one of"),
        (lambda c: c["defaults"]["dataset"].update(n_real="many"), "'many' is not of type"),
        (lambda c: c.update(simulators=["poisson", "gauss"]), "unknown simulator 'gauss'"),
        (lambda c: c["variants"].update(poisson=["nll-cubic"]), "nll-cubic"),
        (  # 0.1 of the tiny config's 32 training problems: 3, too few for NPE's stopping split
            lambda c: c["defaults"]["baselines"].update(train_fractions=[0.1, 1.0]),
            "0.1 of dataset.n_train = 32 is 3 problems; expected a share that leaves at least 10",
        ),
    ],
)
def test_invalid_config_names_the_key(tmp_path, capsys, edit, message):
    path = _bad_config(tmp_path, edit)
    out = tmp_path / "d.npz"
    code = main(
        [
            "dataset",
            "--config",
            str(path),
            "--simulator",
            "poisson",
            "--split",
            "test",
            "--out",
            str(out),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()


def test_bad_inputs_give_one_clear_line(tmp_path, capsys):
    cfg = ["--config", str(TINY)]
    main(
        [
            "-q",
            "dataset",
            *cfg,
            "--simulator",
            "poisson",
            "--split",
            "train",
            "--out",
            f"{tmp_path}/p.npz",
        ]
    )
    cases = [
        (
            ["dataset", *cfg, "--simulator", "gauss", "--split", "test", "--out", "x.npz"],
            "unknown simulator 'gauss'",
        ),
        (
            [
                "train",
                *cfg,
                "--simulator",
                "poisson",
                "--dataset",
                f"{tmp_path}/missing.npz",
                "--out",
                f"{tmp_path}/m.pt",
            ],
            "meta-dataset not found",
        ),
        (
            [
                "train",
                *cfg,
                "--simulator",
                "weinberg",
                "--dataset",
                f"{tmp_path}/p.npz",
                "--out",
                f"{tmp_path}/m.pt",
            ],
            "holds 'poisson' data",
        ),
        (
            [
                "train",
                *cfg,
                "--simulator",
                "poisson",
                "--variant",
                "l1-exp",
                "--dataset",
                f"{tmp_path}/p.npz",
                "--out",
                f"{tmp_path}/m.pt",
            ],
            "invalid variant",
        ),
        (
            [
                "evaluate",
                *cfg,
                "--model",
                f"{tmp_path}/p.npz",
                "--t-test",
                "3",
                "--dataset",
                f"{tmp_path}/p.npz",
                *_tables(tmp_path / "e"),
            ],
            "not a readable",
        ),
        (
            ["aggregate", f"{tmp_path}/nothing.parquet", "--out", f"{tmp_path}/o.parquet"],
            "results table not found",
        ),
        (
            [
                "dataset",
                "--config",
                f"{tmp_path}/none.yaml",
                "--simulator",
                "poisson",
                "--split",
                "test",
                "--out",
                "x.npz",
            ],
            "config file not found",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
    assert not (tmp_path / "m.pt").exists()


def test_corrupt_dataset_file(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    code = main(
        [
            "train",
            "--config",
            str(TINY),
            "--simulator",
            "poisson",
            "--dataset",
            str(bad),
            "--out",
            f"{tmp_path}/m.pt",
        ]
    )
    assert code == 2 and "is not a meta-dataset" in capsys.readouterr().err


def test_console_script_help():
    # The entry point installed beside this interpreter (pip install -e .), not just any on PATH.
    script = Path(sys.executable).parent / "alfi"
    assert script.exists(), f"{script} missing: install the package with pip install -e ."
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True).stdout
    for step in ("dataset", "train", "evaluate", "mle", "aggregate", "figures", "tables", "bench"):
        assert step in out
    out = subprocess.run(
        [sys.executable, "-m", "alfi", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert "weinberg" in out


def test_an_amortised_baseline_on_the_first_training_problems(tmp_path, capsys):
    """``--train-size N``: trained on the first N problems, what it spent says so, the run is
    labelled ``nN``; a size the training set cannot give is one clear line and writes nothing."""
    cfg = ["--config", str(TINY), "--simulator", "poisson"]
    for split in ("train", "test"):
        main(["-q", "dataset", *cfg, "--split", split, "--out", f"{tmp_path}/{split}.npz"])
    data = [f"--train-dataset={tmp_path}/train.npz", f"--dataset={tmp_path}/test.npz"]
    run = ["-q", "baseline", *cfg, "--method", "regressor", *data]
    assert main([*run, "--train-size", "12", *_tables(tmp_path / "r")]) == 0
    metrics = pd.read_parquet(tmp_path / "r_metrics.parquet")
    spent = metrics.loc[metrics["metric"] == "train_simulations", "value"]
    n_real = yaml.safe_load(TINY.read_text())["defaults"]["dataset"]["n_real"]
    assert len(spent) and (spent == 12 * n_real).all()
    assert set(pd.read_parquet(tmp_path / "r_estimates.parquet")["variant"]) == {"n12"}

    expected = "expected 10 (NPE holds a tenth out to stop on) to 32, the training problems"
    for size, name in (("33", "big"), ("2", "small")):
        assert main([*run, "--train-size", size, *_tables(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"alfi baseline: error: --train-size {size}: {expected}"]
        assert not list(tmp_path.glob(f"{name}_*"))


def test_alfi_training_cost_counts_the_real_observations_it_draws_afresh():
    """The stored meta-dataset once (9 problems x 7 observations, as NPE counts it), plus steps x
    meta-batch x (unroll x B x M), plus the real observations of each problem where they are
    drawn per step (fresh_real or fresh_problems), not again where they are the stored ones."""
    train = {"steps": 3, "tail_steps": 2, "meta_batch": 4, "n_theta": 5, "n_sim": 6, "epochs": 5}
    state = {
        "settings": {"train": train, "dataset": {"n_real": 7, "n_train": 9}},
        "history": [{"step": 10, "seconds": 2.0}],
    }
    assert training_cost(state)["train_simulations"] == 9 * 7 + 10 * 4 * (5 * 5 * 6)
    for option in ("fresh_real", "fresh_problems"):
        fresh = {**state, "settings": {**state["settings"], "train": {**train, option: True}}}
        assert training_cost(fresh)["train_simulations"] == 9 * 7 + 10 * 4 * (5 * 5 * 6 + 7)
    # with the tail from half of the 10 steps (8 problems in batches of 4, 5 epochs), the first
    # 5 steps unroll the horizon's 3 updates alone
    late = {
        "train": {**train, "epochs": 5, "tail_from": 0.5},
        "dataset": {"n_real": 7, "n_train": 8},
    }
    spent = 8 * 7 + 4 * (5 * 3 + 5 * 5) * 5 * 6
    assert training_cost({**state, "settings": late})["train_simulations"] == spent
    # a tail grown over half of the steps from the first: 1, 1, then 2 updates past the horizon
    ramp = {**late, "train": {**train, "epochs": 5, "tail_ramp": 0.5}}
    spent = 8 * 7 + 4 * (10 * 3 + 1 + 1 + 8 * 2) * 5 * 6
    assert training_cost({**state, "settings": ramp})["train_simulations"] == spent
    # a metric of the evaluation's tables: its module is among the evaluation's code inputs, so
    # editing it reruns the evaluations that report it
    assert training_cost.__module__ in STAGE_MODULES["evaluate"]


def test_a_diverged_training_exits_3_and_bad_input_2(tmp_path, capsys):
    """Scripts that sweep settings count a diverged seed from the exit status, not by reading
    the message; a user's fault (here a missing dataset) keeps status 2, as a simulator's own
    non-finite output does (not a TrainingDivergedError: tests/test_train.py)."""
    cfg = ["--config", str(TINY), "--simulator", "poisson"]
    main(["-q", "dataset", *cfg, "--split", "train", "--out", f"{tmp_path}/train.npz"])
    diverging = tmp_path / "diverging.yaml"
    settings = yaml.safe_load(TINY.read_text())
    settings["defaults"]["train"].update(lr=1e30, grad_clip=None)
    diverging.write_text(yaml.safe_dump(settings))
    train = ["-q", "train", "--simulator", "poisson", "--dataset", f"{tmp_path}/train.npz"]
    out = ["--checkpoint", f"{tmp_path}/ck.pt", "--out", f"{tmp_path}/m.pt"]
    assert main([*train, "--config", str(diverging), *out]) == 3
    assert "proposal became non-finite" in capsys.readouterr().err
    assert not Path(f"{tmp_path}/m.pt").exists()
    missing = ["-q", "train", *cfg, "--dataset", f"{tmp_path}/missing.npz", *out]
    assert main(missing) == 2


def test_models_checkpoints_and_reference_files_are_told_apart(tmp_path, capsys):
    """A model given as a checkpoint, a checkpoint as a model, one path given twice, a bad
    reference file, a config key given twice: one clear line each, before any work."""
    cfg = ["--config", str(TINY), "--simulator", "poisson"]
    for split in ("train", "test"):
        main(["-q", "dataset", *cfg, "--split", split, "--out", f"{tmp_path}/{split}.npz"])
    train = ["-q", "train", *cfg, "--dataset", f"{tmp_path}/train.npz"]
    model, ckpt = f"{tmp_path}/m.pt", f"{tmp_path}/ck.pt"
    assert main([*train, "--checkpoint", ckpt, "--out", model]) == 0
    bad_reference = tmp_path / "ref.npz"
    bad_reference.write_bytes(b"truncated")
    evaluate = ["-q", "evaluate", "--config", str(TINY), "--t-test", "2"]
    evaluate += ["--dataset", f"{tmp_path}/test.npz", *_tables(tmp_path / "e")]
    duplicated = tmp_path / "dup.yaml"
    duplicated.write_text(TINY.read_text() + "\nseeds: [0, 1]\n")
    cases = [
        ([*train, "--checkpoint", model, "--out", f"{tmp_path}/m2.pt"], "is a trained model"),
        ([*train, "--checkpoint", ckpt, "--out", ckpt], "given more than once"),
        ([*train, "--seed", "0", "1", "--out", model, model], "given more than once"),
        ([*evaluate, "--model", ckpt], "is a training checkpoint, not a model"),
        ([*evaluate, "--model", model, "--reference", str(bad_reference)], "not a .npz archive"),
        (
            [
                "dataset",
                "--config",
                str(duplicated),
                "--simulator",
                "poisson",
                "--split",
                "test",
                "--out",
                f"{tmp_path}/d.npz",
            ],
            "key 'seeds' appears twice",
        ),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, nothing moved
