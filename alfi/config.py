"""Configuration: schema validation and per-simulator settings (seeds: :mod:`alfi.seeds`).

One YAML file (``config.yaml``) drives both the workflow and the CLI. It is validated against
``alfi/schemas/config.schema.json`` (defaults filled in); the settings of one simulator are the
``defaults`` deep-merged with ``overrides[simulator]``, and a variant's models also with
``variant_overrides[variant]`` (:func:`settings_for`; from Python, :func:`settings` resolves
them from a named config, a file or a mapping). What each workflow stage reads of it:
:mod:`alfi.stages`; the plugin simulators a config names: :mod:`alfi.plugins`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

# Re-exported: the seed tree lives in alfi.seeds, among every stage's code inputs.
from alfi.seeds import derive_seed

__all__ = [
    "ConfigError",
    "SCHEMA_PATH",
    "load_config",
    "read_yaml",
    "validate_config",
    "validate_settings",
    "NAMED_CONFIGS",
    "config_path",
    "settings_for",
    "settings",
    "train_sizes",
    "parse_variant",
    "derive_seed",
]

SCHEMA_PATH = Path(__file__).parent / "schemas" / "config.schema.json"
#: The configs of the project (beside the package in a source checkout), by name.
NAMED_CONFIGS = {
    "laptop": "config.yaml",
    "paper": "configs/paper.yaml",
    "tiny": "configs/tiny.yaml",
}


class ConfigError(ValueError):
    """A configuration value is missing, of the wrong type or out of range."""


def _with_defaults(validator_class):
    set_defaults = validator_class.VALIDATORS["properties"]

    def properties(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from set_defaults(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


def _format_error(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    return f"invalid config at '{where}': {error.message}"


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Validate (and fill defaults into) a copy of ``config``; raise :class:`ConfigError`."""
    config = copy.deepcopy(config)
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    while (error := jsonschema.exceptions.best_match(validator.iter_errors(config))) is not None:
        if not _coerce_text(config, error):
            raise ConfigError(_format_error(error))
    return _check_config(config)


def validate_settings(
    settings: Mapping[str, Any], sections: tuple[str, ...] = ("model", "train")
) -> None:
    """Check one simulator's settings as a user edits them in Python (:func:`settings`, then
    ``settings["train"].update(...)``) against the schema's ``settings``: a misspelt key, a
    value of the wrong type or out of range raises :class:`ConfigError` naming it. ``sections``
    must be present; the others are checked where present. Nothing is filled in or changed."""
    if not isinstance(settings, Mapping):
        raise ConfigError(
            f"settings must be a mapping with the sections {', '.join(sections)} (as "
            f"alfi.settings() returns), got {type(settings).__name__}"
        )
    missing = [name for name in sections if name not in settings]
    if missing:
        raise ConfigError(
            f"settings lack the section(s) {', '.join(missing)}; expected a mapping with "
            f"{', '.join(sections)} (as alfi.settings() returns)"
        )
    schema = json.loads(SCHEMA_PATH.read_text())
    root = {**schema["$defs"]["settings"], "required": list(sections), "$defs": schema["$defs"]}
    validator = jsonschema.Draft202012Validator(root)
    error = jsonschema.exceptions.best_match(validator.iter_errors(dict(settings)))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "<top level>"
        raise ConfigError(f"invalid settings at '{where}': {error.message}")


#: Types a text value from the command line may stand for: Snakemake's ``--config
#: seeds=[0,1,2]`` reads the list's items as text ('0', '1', '2').
_TEXT_TYPES = {"integer": int, "number": (int, float), "boolean": bool}


def _coerce_text(config: dict[str, Any], error: jsonschema.ValidationError) -> bool:
    """Replace a text value where the schema wants a number or a boolean by its YAML reading,
    if that is one; whether it did."""
    expected = error.validator_value if error.validator == "type" else None
    kinds = expected if isinstance(expected, list) else [expected]
    if not isinstance(error.instance, str) or not error.absolute_path:
        return False
    value = _read_text(error.instance)
    wanted = tuple(_TEXT_TYPES[k] for k in kinds if k in _TEXT_TYPES)
    if not wanted or not isinstance(value, wanted):
        return False
    if isinstance(value, bool) and bool not in wanted:  # True is an int to Python
        return False
    *parents, last = error.absolute_path
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return True


def _read_text(text: str) -> Any:
    """An integer, a float or a YAML boolean spelled by ``text``, else ``text`` itself."""
    for read in (int, float):
        try:
            return read(text)
        except ValueError:
            pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _check_config(config: dict[str, Any]) -> dict[str, Any]:
    """What the schema cannot say: a usable results folder, known simulators, enough problems."""
    from alfi.plugins import import_plugin
    from alfi.simulators import available  # torch: only once a config is validated

    results = str(config["results"]).strip()
    if not results or Path(results).resolve() == Path(Path(results).resolve().anchor):
        raise ConfigError(
            f"invalid config at 'results': {config['results']!r} is the filesystem root or "
            "empty; expected a folder for the outputs, such as 'results'"
        )
    for module in config["plugins"]:
        import_plugin(module)
    for name in [*config["simulators"], *config["overrides"]]:
        if name not in available():
            raise ConfigError(
                f"invalid config: unknown simulator {name!r}; "
                f"expected one of {', '.join(available())}"
            )
    for name in config["variants"]:
        if name != "default" and name not in available():
            raise ConfigError(f"invalid config at 'variants': unknown simulator {name!r}")
    for variant, update in config["variant_overrides"].items():
        if "steps" in update.get("train", {}):
            raise ConfigError(
                f"invalid config at 'variant_overrides.{variant}.train.steps': the horizon T "
                "is one per simulator (its T_test and figures are read against it); expected "
                "it in defaults.train or overrides.<simulator>.train"
            )
    for name in config["simulators"]:
        settings = settings_for(config, name)
        if {"regressor", "npe"} & set(config["methods"]):
            _check_train_sizes(settings, name)
        npe = settings["baselines"]["npe"]
        if "components" in npe and npe["density"] != "mdn":
            raise ConfigError(
                f"invalid config at 'baselines.npe.components' ({name}): "
                f"{npe['components']} mixture components, but the density is "
                f"{npe['density']!r}; expected density: mdn (the flows have no components)"
            )
    return config


#: Fewest training problems an amortised baseline may be given: NPE holds a tenth out to stop.
MIN_TRAIN_PROBLEMS = 10


def _shares(settings: dict[str, Any]) -> dict[float, int]:
    """Each share in ``baselines.train_fractions`` to its size: that share of
    ``dataset.n_train``, rounded, in problems."""
    n_train = settings["dataset"]["n_train"]
    return {share: round(share * n_train) for share in settings["baselines"]["train_fractions"]}


def train_sizes(settings: dict[str, Any]) -> list[int]:
    """Training-set sizes (problems) of the amortised baselines, distinct and ascending."""
    return sorted(set(_shares(settings).values()))


def _check_train_sizes(settings: dict[str, Any], simulator: str) -> None:
    for share, size in _shares(settings).items():
        if size < MIN_TRAIN_PROBLEMS:
            raise ConfigError(
                f"invalid config at 'baselines.train_fractions' ({simulator}): {share} of "
                f"dataset.n_train = {settings['dataset']['n_train']} is {size} problems; "
                f"expected a share that leaves at least {MIN_TRAIN_PROBLEMS}"
            )


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML forbids it; PyYAML
    keeps the last silently, so a `seeds:` appended below another would win unnoticed)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"{key_node.start_mark.name}: key {key!r} appears twice in one mapping "
                    f"(lines {seen[key]} and {line}); expected each key once"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    """A YAML file's content, a key given twice in one mapping refused (:class:`ConfigError`)."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a YAML config file."""
    path = Path(path)
    try:
        raw = read_yaml(path)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; expected a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not text; expected a YAML file") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping, got {type(raw).__name__}")
    return validate_config(raw)


def _merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def settings_for(
    config: dict[str, Any], simulator: str, variant: str | None = None
) -> dict[str, Any]:
    """The resolved settings (dataset, model, train, evaluate) of one simulator: ``defaults``
    deep-merged with ``overrides[simulator]``, then, for the models of one ``variant``, with
    ``variant_overrides[variant]`` (model and training settings only)."""
    resolved = _merge(config["defaults"], config["overrides"].get(simulator, {}))
    if variant is None:
        return resolved
    return _merge(resolved, config.get("variant_overrides", {}).get(variant, {}))


def config_path(name: str) -> Path:
    """The file of a named config (a key of :data:`NAMED_CONFIGS`) in the project checkout."""
    if name not in NAMED_CONFIGS:
        raise ConfigError(f"unknown config {name!r}; expected one of {', '.join(NAMED_CONFIGS)}")
    path = Path(__file__).resolve().parent.parent / NAMED_CONFIGS[name]
    if not path.is_file():
        raise ConfigError(
            f"config {name!r} ({NAMED_CONFIGS[name]}) is not beside the alfi package at "
            f"{path.parent}: it ships with the project's repository, not the wheel; pass the "
            "path of a config file or a config mapping instead"
        )
    return path


def settings(
    simulator: str,
    config: str | Path | Mapping[str, Any] = "laptop",
    variant: str | None = None,
) -> dict[str, Any]:
    """The resolved settings (``dataset``, ``model``, ``train``, ``evaluate``) of ``simulator``:
    what the workflow's ``settings`` rule writes, ``defaults`` deep-merged with
    ``overrides[simulator]`` (and with ``variant_overrides[variant]`` for one variant's models).

    ``config``: a name of :data:`NAMED_CONFIGS` (``"laptop"``, the default ``config.yaml``;
    ``"paper"``, Appendix B; ``"tiny"``, seconds), the path of a YAML config, or a config
    mapping (validated here, defaults filled in). A fresh dict: edit it freely.
    """
    if isinstance(config, Mapping):
        resolved = validate_config(dict(config))
    elif isinstance(config, str) and config in NAMED_CONFIGS:
        resolved = load_config(config_path(config))
    elif isinstance(config, (str, Path)):
        if not Path(config).exists() and Path(config).suffix not in (".yaml", ".yml"):
            raise ConfigError(
                f"unknown config {str(config)!r}; expected one of {', '.join(NAMED_CONFIGS)}, "
                "the path of a YAML file or a mapping"
            )
        resolved = load_config(config)
    else:
        raise ConfigError(
            f"config must be one of {', '.join(NAMED_CONFIGS)}, the path of a YAML file or a "
            f"mapping; got {type(config).__name__}"
        )
    from alfi.simulators import available

    if simulator not in available():
        raise ConfigError(
            f"unknown simulator {simulator!r}; expected one of {', '.join(available())}"
        )
    if variant is not None:
        parse_variant(variant)
    return settings_for(resolved, simulator, variant)


def parse_variant(variant: str) -> tuple[str, str]:
    """``"nll-exp"`` into ``("nll", "exp")``, with a clear error otherwise."""
    from alfi.columns import LOSSES, WEIGHTINGS

    loss, _, weighting = variant.partition("-")
    if loss not in LOSSES or weighting not in WEIGHTINGS:
        raise ConfigError(
            f"invalid variant {variant!r}; expected LOSS-WEIGHTING with LOSS in {LOSSES} "
            f"and WEIGHTING in {WEIGHTINGS}"
        )
    return loss, weighting
