"""The workflow configuration: one schema for its checks and defaults, loaded once, frozen.

``config/schemas/config.schema.yaml`` types every key and gives every optional key its default;
``config/config.yaml`` is the base configuration a user's file is merged over. Snakemake
validates the merged configuration against the schema at parse time, which fills the defaults;
:func:`load_config` does the same for library users (benchmarks, tests), then the checks that
need several keys at once (:func:`mmlego.config.check_config`), and returns a :class:`Config`
that cannot be changed. The library's settings classes take their defaults from the same
files (:func:`schema_defaults`, :func:`base_defaults`), so that a default is written in one
place only and a library user builds what the workflow builds.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import yaml

from mmlego.config import ConfigError, check_config, drop_null_modalities
from mmlego.pipeline.selection import check_space

CHECKOUT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = CHECKOUT / "config" / "schemas" / "config.schema.yaml"
BASE_CONFIG_FILE = CHECKOUT / "config" / "config.yaml"
PANCANCER_SCHEMA_FILE = CHECKOUT / "config" / "schemas" / "pancancer.schema.yaml"


@cache
def schema() -> dict[str, Any]:
    return yaml.safe_load(SCHEMA_FILE.read_text())


def schema_defaults(*path: str) -> dict[str, Any]:
    """The defaults of the keys of one object of the schema, e.g. ``("baselines",)`` or
    ``("$defs", "preprocess")``."""
    return _defaults(_subschema(*path).get("properties", {}))


@cache
def _base_config() -> dict[str, Any]:
    return yaml.safe_load(BASE_CONFIG_FILE.read_text())


def base_defaults(section: str) -> dict[str, Any]:
    """The workflow's default settings of one top-level section (e.g. ``training``, ``model``):
    the base configuration's values over the schema's defaults, what a user's configuration
    that does not set the section runs with."""
    return schema_defaults(section) | copy.deepcopy(_base_config().get(section) or {})


def _defaults(properties: dict[str, Any]) -> dict[str, Any]:
    """Key -> its default, for the keys of a schema object's ``properties`` that have one."""
    return {k: copy.deepcopy(v["default"]) for k, v in properties.items() if "default" in v}


@cache
def _pancancer_schema() -> dict[str, Any]:
    return yaml.safe_load(PANCANCER_SCHEMA_FILE.read_text())


def pancancer_defaults() -> dict[str, Any]:
    """The defaults of the pan-cancer run's ``pancancer`` section, from its schema."""
    return _defaults(_pancancer_schema()["properties"]["pancancer"]["properties"])


def _subschema(*path: str) -> dict[str, Any]:
    node = schema()
    for i, key in enumerate(path):
        node = node[key] if (i == 0 and key == "$defs") or key in node else node["properties"][key]
    return {"$defs": schema()["$defs"], **node}


def _message(error: jsonschema.ValidationError) -> str:
    """The schema's complaint, with unknown keys listed next to the known ones."""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        return f"unknown key(s) {unknown}; known: {known}"
    return error.message


def check_section(values: Mapping[str, Any], *path: str) -> None:
    """Raise :class:`~mmlego.config.ConfigError` naming the key if ``values`` break the schema
    of the object at ``path`` (e.g. ``("baselines",)``); the settings dataclasses check
    themselves with it, so that every check is written once, in the schema."""
    validator = jsonschema.Draft202012Validator(_subschema(*path))
    errors = sorted(validator.iter_errors(dict(values)), key=lambda e: list(e.absolute_path))
    if errors:
        name = path[-1]
        where = ".".join([name, *(str(p) for p in errors[0].absolute_path)])
        raise ConfigError(f"{where}: {_message(errors[0])}")


def _with_defaults(validator_class: type) -> type:
    """A validator that fills in each missing property's default before checking it."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Check ``config`` against the schema, filling in defaults (in place); return it."""
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        where = ".".join(str(p) for p in errors[0].absolute_path) or "(top level)"
        raise ConfigError(f"{where}: {_message(errors[0])}")
    return config


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base`` key by key (nested mappings merged), as Snakemake merges a
    ``--configfile`` over the workflow's own configuration file."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class Config(Mapping):
    """A validated, complete configuration that cannot be changed (nested mappings are
    read-only, lists become tuples)."""

    data: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    @property
    def cohort(self) -> str:
        return self.data["cohort"]

    @property
    def task(self) -> str:
        return self.data["task"]

    @property
    def seed(self) -> int:
        return self.data["seed"]

    @property
    def modalities(self) -> list[str]:
        return sorted(self.data["modalities"])

    def modalities_of(self, kind: str) -> list[str]:
        """The modalities of one type (``table`` or ``slides``), sorted."""
        return [m for m in self.modalities if self.data["modalities"][m]["type"] == kind]

    @property
    def folds(self) -> list[int]:
        return list(range(self.data["splits"]["k"]))


def check_selection(config: Mapping[str, Any]) -> None:
    """Raise :class:`~mmlego.config.ConfigError` naming the key if a value of the selection's
    search space would make an invalid configuration (each value is checked against the schema
    of its section; ``encoder.<option>`` must be an option of some modality's encoder)."""
    for stage, space in config["selection"]["space"].items():
        try:
            check_space(stage, space)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        for key, values in space.items():
            section, _, name = key.partition(".")
            if section == "encoder":
                if not any(name in m["encoder"] for m in config["modalities"].values()):
                    raise ConfigError(
                        f"selection.space.{stage}.{key}: no modality's encoder has option {name!r}"
                    )
                continue
            for value in values:
                try:
                    check_section({**config[section], name: value}, section)
                except ConfigError as err:
                    raise ConfigError(f"selection.space.{stage}.{key} = {value!r}: {err}") from None


def prepare_config(config: dict[str, Any]) -> dict[str, Any]:
    """Drop ``null`` modalities, validate and fill defaults, check across keys (in place)."""
    drop_null_modalities(config)
    validate_config(config)
    check_config(config)
    check_selection(config)
    return config


def resolve_config(*overrides: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """The base configuration with ``overrides`` (mappings or YAML files) merged over it in
    order, validated, given its defaults and checked: what the workflow would run with, as
    plain (mutable, JSON-able) data."""
    config = copy.deepcopy(_base_config())
    for override in overrides:
        if not isinstance(override, Mapping):
            override = yaml.safe_load(Path(override).read_text()) or {}
        config = merge(config, override)
    return prepare_config(config)


def load_config(*overrides: Mapping[str, Any] | str | Path) -> Config:
    """:func:`resolve_config`, read-only."""
    return Config(_freeze(resolve_config(*overrides)))
