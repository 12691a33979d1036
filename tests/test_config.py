"""Config validation beyond the schema's own checks (values typed on the command line) and the
layering of settings: defaults, a simulator's overrides, a variant's overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from alfi.config import ConfigError, settings_for, validate_config
from alfi.stages import stage_settings

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


def _tiny_with(variant_overrides: dict) -> dict:
    config = yaml.safe_load(TINY.read_text())
    config["variant_overrides"] = variant_overrides
    return validate_config(config)


def test_a_variant_override_applies_to_that_variants_models_alone() -> None:
    """variant_overrides[v] is merged last, over defaults and overrides[simulator], for the
    models of variant v only; every other setting of the simulator stays as it was."""
    plain = validate_config(yaml.safe_load(TINY.read_text()))
    config = _tiny_with({"mse-last": {"train": {"tail_steps": 3, "lr": 5e-4}}})
    base = settings_for(config, "poisson")
    assert base == settings_for(plain, "poisson") == settings_for(config, "poisson", "nll-exp")
    mse_last = settings_for(config, "poisson", "mse-last")
    assert mse_last["train"] == {**base["train"], "tail_steps": 3, "lr": 5e-4}
    assert {k: v for k, v in mse_last.items() if k != "train"} == {
        k: v for k, v in base.items() if k != "train"
    }
    # the simulator's own override still applies beneath the variant's
    config["overrides"]["poisson"] = {"train": {"epochs": 7}}
    assert settings_for(config, "poisson", "mse-last")["train"]["epochs"] == 7
    assert settings_for(config, "poisson", "mse-last")["train"]["tail_steps"] == 3


@pytest.mark.parametrize("layer", ["defaults", "overrides"])
def test_a_variant_override_of_null_unsets_an_option_of_either_layer(layer: str) -> None:
    """A variant's override (config.yaml's mse-const has one) of null and 0 brings back the
    schema's defaults for its models alone: for a tail clip set in ``defaults`` (as config.yaml
    does) or in the simulator's ``overrides``, and for a simulator's late tail."""
    config = _tiny_with({"nll-const": {"train": {"tail_clip_scale": None, "tail_from": 0}}})
    config["overrides"]["poisson"] = {"train": {"tail_from": 0.5}}
    if layer == "defaults":
        config["defaults"]["train"]["tail_clip_scale"] = 0.05
    else:
        config["overrides"]["poisson"]["train"]["tail_clip_scale"] = 0.05
    const = settings_for(config, "poisson", "nll-const")["train"]
    exp = settings_for(config, "poisson", "nll-exp")["train"]
    assert (const["tail_clip_scale"], const["tail_from"]) == (None, 0)
    assert (exp["tail_clip_scale"], exp["tail_from"]) == (0.05, 0.5)


def test_a_variant_override_changes_that_variants_training_stamp_alone() -> None:
    """The workflow's training stamp is per variant: a variant's override retrains its models
    and no other model, and no other stage's outputs."""
    plain = validate_config(yaml.safe_load(TINY.read_text()))
    config = _tiny_with({"mse-last": {"model": {"hidden": 8}}})
    assert stage_settings(config, "poisson", "train", "nll-exp") == stage_settings(
        plain, "poisson", "train", "nll-exp"
    )
    changed = stage_settings(config, "poisson", "train", "mse-last")
    assert changed != stage_settings(plain, "poisson", "train", "mse-last")
    assert changed["model"]["hidden"] == 8
    for stage in ("data", "evaluate", "regressor", "npe", "abc_smc", "reference", "posterior"):
        assert stage_settings(config, "poisson", stage) == stage_settings(plain, "poisson", stage)
    with pytest.raises(ValueError, match="only the train stage is per variant"):
        stage_settings(config, "poisson", "evaluate", "mse-last")


@pytest.mark.parametrize(
    ("variant_overrides", "message"),
    [
        (
            {"nll-const": {"train": {"steps": 30}}},
            "invalid config at 'variant_overrides.nll-const.train.steps': the horizon T is one "
            "per simulator",
        ),
        (
            {"nll-fast": {"train": {"lr": 1e-3}}},
            "invalid config at 'variant_overrides': 'nll-fast' does not match",
        ),
        (
            {"nll-const": {"dataset": {"n_train": 10}}},
            "invalid config at 'variant_overrides.nll-const': Additional properties are not "
            "allowed ('dataset' was unexpected)",
        ),
        (
            {"nll-const": {"train": {"tail_steps": -1}}},
            "invalid config at 'variant_overrides.nll-const.train.tail_steps': -1 is less than "
            "the minimum of 0",
        ),
    ],
)
def test_a_bad_variant_override_is_named(variant_overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        _tiny_with(variant_overrides)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("npe", "message"),
    [
        (
            {"density": "nsf", "components": 3},
            "invalid config at 'baselines.npe.components' (poisson): 3 mixture components, but "
            "the density is 'nsf'; expected density: mdn",
        ),
        ({"density": "mdn", "components": 0}, "invalid config at 'overrides.poisson.baselines"),
    ],
)
def test_mixture_components_without_a_mixture_are_named(npe: dict, message: str) -> None:
    """``baselines.npe.components`` is checked on each simulator's resolved settings, so an
    override that sets it alone, on a mixture density from the defaults, is valid."""
    config = yaml.safe_load(TINY.read_text())
    config["overrides"] = {"poisson": {"baselines": {"npe": npe}}}
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value).startswith(message)
    config["defaults"]["baselines"]["npe"]["density"] = "mdn"
    config["overrides"]["poisson"]["baselines"]["npe"] = {"components": 3}
    npe_settings = settings_for(validate_config(config), "poisson")["baselines"]["npe"]
    assert npe_settings["components"] == 3 and npe_settings["density"] == "mdn"


@pytest.mark.parametrize(
    ("anneal", "message"),
    [
        (
            {"factor": 1.5, "stop_after_epochs": 20},
            "invalid config at 'defaults.baselines.npe.anneal.factor': 1.5 is greater than or "
            "equal to the maximum of 1",
        ),
        (
            {"factor": 0.1},
            "invalid config at 'defaults.baselines.npe.anneal': 'stop_after_epochs' is a "
            "required property",
        ),
    ],
)
def test_a_bad_npe_anneal_is_named(anneal: dict, message: str) -> None:
    """``baselines.npe.anneal`` needs a factor below 1 (a slower second phase) and a patience."""
    config = yaml.safe_load(TINY.read_text())
    config["defaults"]["baselines"]["npe"]["anneal"] = anneal
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1, "invalid config at 'defaults.train.tail_from': 1 is greater than or equal to the "),
        (-0.5, "invalid config at 'defaults.train.tail_from': -0.5 is less than the minimum of 0"),
    ],
)
def test_a_tail_that_never_or_before_training_starts_is_named(value: float, message: str) -> None:
    """``train.tail_from`` is a fraction of the steps in [0, 1): at 1 the tail would never train."""
    config = yaml.safe_load(TINY.read_text())
    config["defaults"]["train"]["tail_from"] = value
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value).startswith(message)


def test_a_tail_restart_that_is_not_a_boolean_is_named() -> None:
    config = yaml.safe_load(TINY.read_text())
    config["defaults"]["train"]["tail_restart"] = "sometimes"
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value).startswith(
        "invalid config at 'defaults.train.tail_restart': 'sometimes' is not of type 'boolean'"
    )


def test_the_schema_offers_exactly_the_encoders_poolings() -> None:
    """ALFI's ``model.pooling`` and NPE's ``baselines.npe.pooling`` (which adds nothing of its
    own: it builds the same set encoder) list the poolings :class:`alfi.nn.SetEncoder` knows."""
    import json
    from importlib import resources

    from alfi.nn import POOLINGS

    schema = json.loads(resources.files("alfi").joinpath("schemas/config.schema.json").read_text())
    found = []

    def visit(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("pooling"), dict):  # an enum, or a default elsewhere
                found.append(node["pooling"].get("enum") or [node["pooling"]["default"]])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    enums = [values for values in found if len(values) > 1]
    assert len(enums) == 2 and all(values == list(POOLINGS) for values in enums), found
    assert all(set(values) <= set(POOLINGS) for values in found), found
