"""Loading and validating the workflow config (`config/*.yaml`) before any work starts.

The JSON schema (`schema()`: config.schema.yaml and schemas/<family>.yaml, linked from
`workflow/schemas/`) checks types, ranges,
enums and unknown keys; `check_config` adds the checks a schema cannot express (one key
bounded by another) by calling the families' own checks and building the config class of every
job the rules start, so each fact is stated once and a config it passes is one no job refuses
(machine-dependent limits, such as the memory a job finds, aside). Every error names the key and
what was expected. Files are read strictly:
UTF-8 only, and a key given twice in one mapping is an error naming the key and both lines
(plain YAML keeps the last one silently).

Runs: every config's outputs live apart, under `results/<run>/`, `figures/<run>/` and
`paper/<run>/` (see `run_name`): the `run` key if set, else the config file's name.
"""

from __future__ import annotations

import copy
import functools
import importlib

import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """A config value is missing, unknown or out of range; the message names the key."""


@functools.cache
def _schema_files() -> dict[str, Any]:
    """config.schema.yaml with every schemas/<family>.yaml block added, its knobs filled in from
    its config class (`knobs.block_schema`); built once per process: a sweep's check validates one
    block per grid point."""
    from modelcollapse import knobs

    package = resources.files("modelcollapse")
    out = yaml.safe_load(package.joinpath("config.schema.yaml").read_text(encoding="utf-8"))
    out["$defs"] = {name: knobs.block_schema(block) for name, block in out["$defs"].items()}
    for path in sorted(package.joinpath("schemas").iterdir(), key=lambda p: p.name):
        if path.name.endswith(".yaml"):
            for family, block in yaml.safe_load(path.read_text(encoding="utf-8")).items():
                out["properties"][family] = knobs.block_schema(block)
                out["required"].append(family)
    return out


def families() -> list[str]:
    """The experiment families: one per block file in schemas/ (sorted)."""
    return sorted(name for name, block in _schema_files()["properties"].items()
                  if name not in _SHARED_BLOCKS and block.get("type") == "object")


_SHARED_BLOCKS = ("paper", "sweeps")  # object-valued blocks of config.schema.yaml that are not families


def schema() -> dict[str, Any]:
    """The config schema: config.schema.yaml (the shared keys and definitions), one block per family
    from schemas/<family>.yaml, and the regime definition extended by every registered regime."""
    from modelcollapse import regimes

    out = copy.deepcopy(_schema_files())
    added = [name for name in regimes.registered() if name not in regimes.NAMES]
    if added:  # one object branch that the name selects, so an error names the offending key
        alternatives = out["$defs"]["regime"]["oneOf"]
        built_in = alternatives[1]
        alternatives[1] = {
            "type": "object", "required": ["name"],
            "properties": {"name": {"description": "Regime name.", "enum": list(regimes.NAMES) + added}},
            "allOf": [{"if": {"properties": {"name": {"enum": list(regimes.NAMES)}}}, "then": built_in}]
            + [{"if": {"properties": {"name": {"const": name}}}, "then": regimes.json_schema(name)} for name in added]}
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file's mapping, read strictly: ConfigError naming the file for a missing file,
    bytes that are not UTF-8 (with the line), invalid YAML, a key given twice in one mapping (with
    the key and both lines) or a top level that is not a mapping. Does not validate the keys."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; expected a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"config file {path} is not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line}); "
                          f"save it as UTF-8") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        _reject_duplicate_keys(node)
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {' '.join(str(err).split())}") from None
    except ConfigError as err:
        raise ConfigError(f"config file {path}: {err}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys, got {type(config).__name__}")
    return config


def _reject_duplicate_keys(node, path: str = "") -> None:
    """ConfigError for the first mapping key given twice under `node` (a composed YAML node)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            dotted = f"{path}.{key}" if path else key
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                raise ConfigError(f"config key '{dotted}' is given twice (lines {seen[key]} and {line}); "
                                  f"keep one")
            seen[key] = line
            _reject_duplicate_keys(value_node, dotted)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _reject_duplicate_keys(item, f"{path}[{i}]")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it; raises ConfigError naming the file and key."""
    config = read_yaml(path)
    try:
        check_config(config)
        run_name(config, [path])
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return config


# The run of config/config.yaml (the file every other config is a variant of).
DEFAULT_RUN = "default"
_RUN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def run_name(config: Mapping[str, Any], configfiles: Sequence[str | Path] = ()) -> str:
    """The name of the run whose outputs this config writes (`results/<run>/`, `figures/<run>/`,
    `paper/<run>/`): the `run` key if set, else the name of the last config file given without
    its extension (config/smoke.yaml -> 'smoke', config/paper.yaml -> 'paper'), where
    config/config.yaml and no file at all give 'default'."""
    if config.get("run"):
        return str(config["run"])
    if not configfiles:
        return DEFAULT_RUN
    stem = Path(configfiles[-1]).stem
    if stem == "config":
        return DEFAULT_RUN
    if not _RUN.fullmatch(stem):
        raise ConfigError(f"config key 'run': not set, and the config file name {stem!r} cannot name the run's "
                          f"folders (letters, digits, '_', '.', '-'); set run: NAME in the file")
    return stem


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
        if not error.absolute_path:  # a whole block (or a shared key) is missing
            return (f"config key '{key}': {error.message}; a config file is complete by itself (nothing is filled "
                    f"in from config/config.yaml): copy the missing block from config/smoke.yaml or "
                    f"config/config.yaml")
        return f"config key '{key}': {error.message}"
    expected = error.schema.get("description")
    hint = f" (expected: {expected.strip()})" if expected else ""
    return f"config key '{key}': {error.message}{hint}"


def check_config(config: Mapping[str, Any], *, blocks: tuple[str, ...] | None = None) -> None:
    """Raise ConfigError for the first problem found (schema errors first, deepest key first).

    blocks: check only these family blocks (plus the shared top-level keys), for a step that is
    given just the part of the config it depends on (so Snakemake reruns it only when that changes).
    """
    full = schema()
    if blocks is not None:
        shared = [k for k, v in full["properties"].items() if v.get("type") != "object"]
        full = dict(full, required=[k for k in full["required"] if k in shared or k in blocks])
    validator = jsonschema.Draft202012Validator(full)
    errors = sorted(validator.iter_errors(config), key=lambda e: (-len(e.absolute_path), e.message))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(_describe(best))
    for name in families():
        if name in config:
            check = getattr(importlib.import_module(f"modelcollapse.commands.{name}"), "check_block", None)
            if check is not None:  # a family's command module checks the jobs its block starts
                check(config[name])
    if config.get("sweeps"):
        _check_sweeps(config)


# A pool of stored points (accumulate_subsample) costs 4 bytes x replicates x M x generations.
MAX_POOL_BYTES = 4 * 2**30


def regime_at(value, key: str):
    from modelcollapse.regimes import Regime

    if isinstance(value, dict) and value.get("name") == "mix" and "real_fraction" not in value:
        raise ConfigError(f"config key '{key}': regime 'mix' needs real_fraction (share of real data, in [0, 1])")
    try:
        return Regime.from_config(value)
    except ValueError as err:
        raise ConfigError(f"config key '{key}': {err}") from None


def library_check(key: str, check, *args, fields: Mapping[str, str] | None = None, **kwargs):
    """Run one of the library's own checks (a family's function or config class, raising ValueError)
    and name the config key: `key`, or the key that `fields` gives for the argument the library's
    message starts with. A fact is checked in one place, so a job refuses nothing this lets through."""
    try:
        return check(*args, **kwargs)
    except ValueError as err:
        message = str(err)
        named = (fields or {}).get(message.split(" ", 1)[0], key)
        raise ConfigError(f"config key '{named}': {message}") from None


def key_names(prefix: str, block: Mapping[str, Any]) -> dict[str, str]:
    """{argument: config key} for a block whose keys are the library's argument names."""
    return {name: f"{prefix}.{name}" for name in block}


def check_pool(regime, *, key: str, replicates: int, sample_size: int, generations: int) -> None:
    from modelcollapse import regimes

    need = 4 * replicates * sample_size * generations
    if "pool_subset" in regimes.needs(regime) and need > MAX_POOL_BYTES:
        raise ConfigError(f"config key '{key}': {regime.label} stores every point, "
                          f"{need / 2**30:.1f} GiB for replicates x M x generations; lower one of them "
                          f"(limit {MAX_POOL_BYTES / 2**30:.0f} GiB)")


def check_within_generations(block, family: str) -> None:
    too_late = [n for n in block["table_generations"] if n > block["generations"]]
    if too_late:
        raise ConfigError(f"config key '{family}.table_generations': {too_late} exceed "
                          f"{family}.generations = {block['generations']}; each must be at most that")










def _check_sweeps(config) -> None:
    """Every point of every sweep is a block its family accepts (the same checks as the block itself)."""
    from modelcollapse import sweeps

    for name, sweep in config["sweeps"].items():
        key = f"sweeps.{name}"
        if sweep["family"] not in config or not isinstance(config[sweep["family"]], dict):
            raise ConfigError(f"config key '{key}.family': {sweep['family']!r} is not a family block of the config")
        library_check(f"{key}.family", sweeps.rows_function, sweep["family"])
        for index, values in enumerate(sweeps.points(sweep)):
            try:
                point = library_check(key, sweeps.point_config, config, name, index)
                check_config(point, blocks=(sweep["family"],))
            except ConfigError as err:
                raise ConfigError(f"config key '{key}' at point {index} {values}: {err}") from None




