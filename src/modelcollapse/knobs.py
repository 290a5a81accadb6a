"""Knobs: each setting of a family is declared once, as a field of its typed config.

A knob is a dataclass field made by `knob(default, help=..., **json_schema)`: its default, its
one-line description and its type and bounds as a JSON-schema fragment. Everything else is derived
from the fields, so a setting cannot be spelled two ways:

- the config block's schema: a block of schemas/<family>.yaml that names its class with
  `x-config-class: module:Class` gets a property (and a required key) per knob
  (`config.schema()` calls `block_schema`); the file keeps only the keys that are not knobs (lists
  of jobs, sub-blocks, the regime);
- the dataclass's own field checks (`check`, run by __post_init__): the same fragment through the
  same validator, so `check-config` and the library refuse the same values with the same words;
- the block reader `from_block` and the command-line flags (`commands.add_knob_flags`).

A knob with `block=False` is a setting the rules take from elsewhere (a list entry, a sub-block, a
selector): it has a flag and its check but no key in the family block.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
from collections.abc import Mapping
from typing import Any

import jsonschema
import numpy as np


def knob(default: Any = dataclasses.MISSING, *, help: str, block: bool = True, **schema) -> Any:
    """A config field that is a setting: `help` is its description, `schema` its JSON-schema type
    and bounds (type, minimum, enum, items, ...); block=False keeps it out of the config block."""
    return dataclasses.field(default=default, metadata={"knob": {"description": help, **schema}, "block": block})


def knobs(cls, *, block: bool | None = None) -> list[dataclasses.Field]:
    """The knob fields of a config class (block True/False: only those that are / are not block keys)."""
    return [f for f in dataclasses.fields(cls) if "knob" in f.metadata
            and (block is None or f.metadata["block"] == block)]


def schema_of(field: dataclasses.Field) -> dict[str, Any]:
    return dict(field.metadata["knob"])


def config_class(path: str):
    """The class named by `module:Class` (a schema file's x-config-class)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def block_schema(block: Mapping[str, Any], cls=None) -> dict[str, Any]:
    """A schema block with its `x-config-class`'s block knobs added as properties (in field order,
    before the file's own keys) and as required keys (unless `x-knobs-required: false`: then only
    the file's `required` list); `{x-knob: name}` anywhere inside replaced by that knob's schema
    (`name` a field of the enclosing class, or `module:Class.field`); nested blocks likewise. The
    input is not changed."""
    out = dict(block)
    path = out.pop("x-config-class", None)
    all_required = out.pop("x-knobs-required", True)
    cls = config_class(path) if path is not None else cls
    if "x-knob" in out:
        owner, _, name = out["x-knob"].rpartition(".") if ":" in out["x-knob"] else (None, "", out["x-knob"])
        owner = config_class(owner) if owner else cls
        if owner is None:
            raise ValueError(f"x-knob {out['x-knob']!r} outside a block with an x-config-class")
        return {f.name: schema_of(f) for f in knobs(owner)}[name]
    for key, value in out.items():
        if isinstance(value, Mapping):
            out[key] = block_schema(value, cls) if key != "properties" else {
                name: block_schema(v, cls) for name, v in value.items()}
    if path is not None:
        fields = knobs(cls, block=True)
        clash = sorted(set(out.get("properties", {})) & {f.name for f in fields})
        if clash:
            raise ValueError(f"schema block of {path} declares knobs again: {clash}")
        out["properties"] = {f.name: schema_of(f) for f in fields} | out.get("properties", {})
        if all_required:
            out["required"] = [f.name for f in fields] + list(out.get("required", []))
    return out


def _is_number(_, value) -> bool:  # not NaN: a NaN passes every bound check, so it is no number here
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and not math.isnan(value))


def _is_integer(_, value) -> bool:  # JSON's: 3.0 is an integer (`check` stores it as 3); inf is not
    return _is_number(_, value) and float(value).is_integer()


_TYPES = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many({
    "integer": _is_integer, "number": _is_number,
    "array": lambda _, value: isinstance(value, (list, tuple))})
Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=_TYPES)


@functools.cache
def _validators(cls) -> tuple[tuple[str, Any], ...]:
    return tuple((f.name, Validator(schema_of(f))) for f in knobs(cls))


def check(obj) -> None:
    """ValueError naming the first knob of the frozen dataclass instance `obj` outside its schema;
    then stores each knob as its type holds it (`normal`), so that a config is the same whether
    built from YAML, JSON, flags or NumPy values."""
    for name, validator in _validators(type(obj)):
        value = getattr(obj, name)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is not None:
            where = name + "".join(f"[{i}]" for i in error.absolute_path)
            raise ValueError(f"{where} must be {expected(error.schema)}, got {error.instance!r} "
                             f"({validator.schema['description']})")
        object.__setattr__(obj, name, normal(validator.schema, value))


_KINDS = {"integer": "an integer", "number": "a number", "string": "a string", "array": "a list",
          "boolean": "true or false", "null": "null"}
_BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))


def expected(schema: Mapping[str, Any]) -> str:
    """What a schema fragment accepts, in words: 'an integer >= 1 and <= 100', 'one of [...]'."""
    if "enum" in schema:
        return f"one of {list(schema['enum'])}"
    kinds = schema.get("type", [])
    text = " or ".join(_KINDS[k] for k in (kinds if isinstance(kinds, list) else [kinds]))
    bounds = [f"{word} {schema[key]}" for key, word in _BOUNDS if key in schema]
    if "minItems" in schema:
        bounds.append(f"of at least {schema['minItems']} entries")
    if schema.get("uniqueItems"):
        bounds.append("without repeats")
    return " ".join(filter(None, [text, " and ".join(bounds)])) or "as the schema says"


def normal(schema: Mapping[str, Any], value: Any) -> Any:
    """A valid value as Python holds it: arrays as tuples (configs are frozen and hashable), integer
    knobs as int, numbers as float (YAML reads `1` as an int, NumPy gives np.float64)."""
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if isinstance(value, (list, tuple)) and "array" in kinds:
        return tuple(normal(schema.get("items", {}), v) for v in value)
    if _is_number(None, value):
        if "integer" in kinds and "number" not in kinds:
            return int(value)
        if "number" in kinds:
            return float(value)
    return value


def from_block(cls, block: Mapping[str, Any], **fields):
    """`cls` from the block's knob keys and the given other fields."""
    return cls(**{f.name: block[f.name] for f in knobs(cls, block=True) if f.name in block} | fields)


def flags(config_class_path: str, block: Mapping[str, Any]) -> str:
    """The block's knob values as command-line flags (`--sample-size 10 ...`, in field order), for a
    rule that runs a flag-driven command: it passes the settings without spelling each one."""
    import shlex

    words = []
    for field in knobs(config_class(config_class_path), block=True):
        value = block[field.name]
        words.append("--" + field.name.replace("_", "-"))
        words += [shlex.quote(str(v)) for v in value] if isinstance(value, (list, tuple)) else [shlex.quote(str(value))]
    return " ".join(words)
