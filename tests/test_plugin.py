"""A user's own simulator, exactly as the README shows it, runs through the CLI unchanged."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml

from alfi.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_readme_simulator_plugin_end_to_end(readme_plugin, tmp_path, monkeypatch):
    (tmp_path / "my_simulators.py").write_text(readme_plugin)
    config = yaml.safe_load((ROOT / "configs" / "tiny.yaml").read_text())
    config.update(simulators=["gaussian_mean"], plugins=["my_simulators"])
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)
    cfg = ["--config", "config.yaml"]
    sim = ["--simulator", "gaussian_mean"]
    for split in ("train", "test"):
        assert main(["-q", "dataset", *cfg, *sim, "--split", split, "--out", f"{split}.npz"]) == 0
    assert main(["-q", "train", *cfg, *sim, "--dataset", "train.npz", "--out", "m.pt"]) == 0
    tables = [f"--{t}={t}.parquet" for t in ("estimates", "metrics", "samples")]
    assert (
        main(
            [
                "-q",
                "evaluate",
                *cfg,
                "--model",
                "m.pt",
                "--t-test",
                "3",
                "--dataset",
                "test.npz",
                *tables,
            ]
        )
        == 0
    )
    estimates = pd.read_parquet("estimates.parquet")
    assert set(estimates.parameter) == {"mean"} and estimates.estimate.notna().all()
    assert main(["-q", "mle", *cfg, *sim, "--dataset", "test.npz", *tables]) == 0
    mle = pd.read_parquet("estimates.parquet")
    # The MLE of a Gaussian mean with unit noise and 20 observations: error sd 1/sqrt(20).
    assert (mle.estimate - mle.true).abs().max() < 5 / 20**0.5


def test_readme_check_simulator_snippet(readme_plugin):
    """The README's "Check a simulator" snippet, on its own example class."""
    namespace: dict = {}
    exec(compile(readme_plugin.replace("@register\n", ""), "README", "exec"), namespace)
    text = (ROOT / "README.md").read_text()
    snippet = re.search(r"```python\n(from alfi.testing import check_simulator.*?)```", text, re.S)
    assert snippet, "README.md lost its check_simulator snippet"
    exec(snippet[1], namespace)
    assert namespace["report"].passed
