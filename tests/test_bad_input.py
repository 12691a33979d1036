"""Bad input is one line on stderr and exit status 2, naming the file and what was expected, and
nothing written so far is lost: damaged files, unwritable outputs, broken or shadowing plugins,
simulators that return the wrong thing, paths that make no sense."""

from __future__ import annotations

import os
import stat
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from alfi.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny.yaml"
CFG = ["--config", str(TINY)]


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _dataset(path: Path, split: str = "train") -> list[str]:
    return ["-q", "dataset", *CFG, "--simulator", "poisson", "--split", split, "--out", str(path)]


def _train(dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["-q", "train", *CFG, "--simulator", "poisson", "--dataset", str(dataset),
            "--out", str(out), *extra]  # fmt: skip


@pytest.fixture
def good_dataset(tmp_path) -> Path:
    path = tmp_path / "good.npz"
    assert main(_dataset(path)) == 0
    return path


def _truncated(tmp_path: Path, good: Path) -> Path:
    path = tmp_path / "truncated.npz"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return path


def _random_bytes(tmp_path: Path, good: Path) -> Path:
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def _no_problems(tmp_path: Path, good: Path) -> Path:
    path = tmp_path / "empty.npz"
    np.savez(path, theta=np.zeros((0, 1), np.float32), x=np.zeros((0, 20, 1), np.float32),
             simulator=np.array("poisson"), seed=np.array(0))  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_truncated, "not a .npz archive"),
        (_random_bytes, "not a .npz archive"),
        (_no_problems, "holds 0 problems"),
    ],
    ids=["truncated", "random-bytes", "no-problems"],
)
def test_damaged_dataset(tmp_path, capsys, good_dataset, make, message):
    bad = make(tmp_path, good_dataset)
    assert main(_train(bad, tmp_path / "m.pt")) == 2
    line = _one_line_error(capsys)
    assert str(bad) in line and message in line and "pickled" not in line
    assert not (tmp_path / "m.pt").exists()


def test_output_that_is_a_folder_or_under_a_file(tmp_path, capsys, good_dataset):
    folder = tmp_path / "folder.npz"
    folder.mkdir()
    assert main(_dataset(folder)) == 2
    assert "is a folder; expected a file path" in _one_line_error(capsys)
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert main(_train(good_dataset, a_file / "m.pt")) == 2
    line = _one_line_error(capsys)
    assert f"lies under {a_file}, which is a file" in line


def test_unwritable_output_fails_before_training(tmp_path, capsys, good_dataset, monkeypatch):
    """The check runs before any step: a run that could not save its model does not start."""
    out = tmp_path / "ro" / "m.pt"
    out.parent.mkdir()
    real_mkstemp = __import__("tempfile").mkstemp

    def refuse(*args, dir=None, **kwargs):  # root ignores chmod: refuse the folder explicitly
        if Path(dir) == out.parent:
            raise PermissionError(13, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr("alfi.io.tempfile.mkstemp", refuse)
    monkeypatch.setattr("alfi.train.train", lambda *a, **k: pytest.fail("training started"))
    assert main(_train(good_dataset, out)) == 2
    assert f"cannot write output {out}: Permission denied" in _one_line_error(capsys)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_outputs_honour_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert main(_dataset(tmp_path / "d.npz")) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "d.npz").stat().st_mode) == 0o666 & ~mask


def _plugin(tmp_path: Path, monkeypatch, source: str) -> tuple[str, Path]:
    """A plugin module with a fresh name in the working directory, and a config naming it."""
    name = f"plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    config = yaml.safe_load(TINY.read_text())
    config["plugins"] = [name]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    return name, path


SIMULATOR = """
    import torch
    from alfi.simulators import Simulator, register


    @register
    class Broken(Simulator):
        name = "{name}"
        parameter_names = ("mean",)
        observation_dim = 1
        prior_low = (-1.0,)
        prior_high = (1.0,)

        def simulate(self, theta, n, generator):
            x = theta.unsqueeze(-2) + torch.randn((*theta.shape[:-1], n, 1), generator=generator)
            {mangle}
            return x
"""


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import torch\n\ndef f(:\n    pass\n", "SyntaxError"),
        ("import torch\n\nvalue = undefined_name + 1\n", "NameError: name 'undefined_name'"),
        (SIMULATOR.format(name="poisson", mangle="pass"), "'poisson' of"),
    ],
    ids=["syntax-error", "name-error", "shadows-a-built-in"],
)
def test_broken_plugin_is_one_line_with_file_and_line(tmp_path, capsys, monkeypatch, source,
                                                      message):  # fmt: skip
    name, config = _plugin(tmp_path, monkeypatch, source)
    argv = ["dataset", "--config", str(config), "--simulator", "poisson", "--split", "test",
            "--out", str(tmp_path / "d.npz")]  # fmt: skip
    assert main(argv) == 2
    line = _one_line_error(capsys)
    assert f"cannot import {name!r} ({tmp_path / name}.py, line " in line and message in line
    if "shadows" in message or "poisson" in message:
        assert "already taken by alfi.simulators.poisson.Poisson" in line
        assert "@register(replace=True)" in line


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        ("x[..., 0, :] = float('nan')", "returned non-finite observations for"),
        ("x = x[..., :1, :]", "returned observations of shape"),
    ],
    ids=["nan", "wrong-shape"],
)
def test_simulator_output_is_checked_when_the_dataset_is_made(tmp_path, capsys, monkeypatch,
                                                              mangle, message):  # fmt: skip
    sim = f"broken_{uuid.uuid4().hex[:6]}"
    _, config = _plugin(tmp_path, monkeypatch, SIMULATOR.format(name=sim, mangle=mangle))
    out = tmp_path / "d.npz"
    argv = ["dataset", "--config", str(config), "--simulator", sim, "--split", "test",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 2
    line = _one_line_error(capsys)
    assert f"simulator {sim!r} {message}" in line and not out.exists()


@pytest.mark.parametrize("results", ["", "   ", "/"])
def test_results_path_must_be_a_folder_of_its_own(tmp_path, capsys, results):
    config = yaml.safe_load(TINY.read_text())
    config["results"] = results
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    argv = ["dataset", "--config", str(path), "--simulator", "poisson", "--split", "test",
            "--out", str(tmp_path / "d.npz")]  # fmt: skip
    assert main(argv) == 2
    assert "invalid config at 'results'" in _one_line_error(capsys)


def test_a_group_whose_variants_train_under_different_settings_is_refused(
    tmp_path, capsys, good_dataset
):
    """An ensemble shares every setting: a group whose variants variant_overrides sets apart is
    one clear line and nothing written; each variant alone trains under its own settings."""
    config = yaml.safe_load(TINY.read_text())
    config["variant_overrides"] = {"mse-last": {"train": {"tail_steps": 2}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    args = ["-q", "train", "--config", str(path), "--simulator", "poisson"]
    args += ["--dataset", str(good_dataset), "--seed", "0"]
    outs = [tmp_path / "exp.pt", tmp_path / "last.pt", tmp_path / "nll-last.pt"]
    group = [*args, "--variant", "nll-exp", "mse-last", "nll-last", "--out", *map(str, outs)]
    assert main(group) == 2
    line = _one_line_error(capsys)
    assert (
        "variant_overrides gives its variants 2 different sets of them (nll-exp, nll-last |" in line
    )
    assert line.endswith("mse-last); expected one `alfi train` per set")
    assert not any(out.exists() for out in outs)

    from alfi.train import load_model

    for variant, out, tail in (("nll-exp", outs[0], 0), ("mse-last", outs[1], 2)):  # alone
        assert main([*args, "--variant", variant, "--out", str(out)]) == 0
        _, state = load_model(out)
        assert state["settings"]["train"]["tail_steps"] == tail
