"""Loading and validating the workflow config (`config/*.yaml`) before any work starts.

The JSON schema (`config.schema.yaml`, linked from `workflow/schemas/`) checks types, ranges,
enums and unknown keys; `check_config` adds the checks a schema cannot express (one key
bounded by another). Every error names the key and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names the key."""


def schema() -> dict[str, Any]:
    text = resources.files("modelcollapse").joinpath("config.schema.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it; raises ConfigError naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(config).__name__}")
    try:
        check_config(config)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return config


def _key_path(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"config key '{key}': {error.message}; allowed keys: {', '.join(allowed)}"
    if error.validator == "required":
        return f"config key '{key}': {error.message}"
    expected = error.schema.get("description")
    hint = f" (expected: {expected.strip()})" if expected else ""
    return f"config key '{key}': {error.message}{hint}"


def check_config(config: Mapping[str, Any]) -> None:
    """Raise ConfigError for the first problem found (schema errors first, deepest key first)."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: (-len(e.absolute_path), e.message))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(_describe(best))
    gaussian = config["gaussian"]
    too_late = [g for g in gaussian["table_generations"] if g > gaussian["generations"]]
    if too_late:
        raise ConfigError(f"config key 'gaussian.table_generations': {too_late} exceed "
                          f"gaussian.generations = {gaussian['generations']}; each must be at most that")
