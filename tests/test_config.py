"""Config validation beyond the schema's own checks: values typed on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alfi.config import ConfigError, validate_config

TINY = Path(__file__).resolve().parents[1] / "configs" / "tiny.yaml"


def test_command_line_text_is_read_as_the_numbers_it_spells() -> None:
    """Snakemake's ``--config seeds=[0,1,2]`` hands over the items as text; they are numbers."""
    config = yaml.safe_load(TINY.read_text())
    config.update(seeds=["0", "1", "2"], t_test=["4"])
    config["defaults"]["train"]["lr"] = "2e-3"
    config["defaults"]["baselines"]["train_fractions"] = ["0.5", "1"]
    valid = validate_config(config)
    assert valid["seeds"] == [0, 1, 2] and valid["t_test"] == [4]
    assert valid["defaults"]["train"]["lr"] == 2e-3
    assert valid["defaults"]["baselines"]["train_fractions"] == [0.5, 1]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("seeds", ["0", "x"], "invalid config at 'seeds.1': 'x' is not of type 'integer'"),
        ("seeds", ["1.5"], "invalid config at 'seeds.0': '1.5' is not of type 'integer'"),
        ("seeds", ["true"], "invalid config at 'seeds.0': 'true' is not of type 'integer'"),
    ],
)
def test_text_that_spells_no_such_number_is_still_an_error(key, value, message) -> None:
    config = yaml.safe_load(TINY.read_text())
    config[key] = value
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value) == message
